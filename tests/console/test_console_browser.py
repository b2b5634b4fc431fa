"""The console end to end in headless Chromium against a live controller (noop provider:
load balancers go ACTIVE without agents): log in, create L4 and L7 load balancers through
the wizard, drain a member, diff and roll back, watch the traffic chart move, and the first
useful paint of the list with 1,000 load balancers."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from shoal.controller.db.engine import Database
from shoal.controller.db.models import Node
from shoal.controller.settings import ControllerSettings
from tests.api.helpers import ADMIN_SECRET

from .browser import (
    chromium_page,
    live_controller,
    log_in,
    need_browser,
    see_active,
    shot,
    wait_until,
    wizard,
)

# The page's first contentful paint (ms after navigation start), once Chromium records it.
FCP = """() => new Promise((done) => {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.name === "first-contentful-paint") done(e.startTime);
  }).observe({ type: "paint", buffered: true });
})"""
SHOTS = os.environ.get("SHOAL_CONSOLE_SCREENSHOTS") == "1"


@pytest.fixture
def live(settings: ControllerSettings) -> Iterator[str]:
    with live_controller(settings) as url:
        yield url


@pytest.fixture
def page(live: str) -> Iterator[Any]:
    sync_api = need_browser()
    with chromium_page(sync_api) as p:
        yield p


def api(live: str, token: str = ADMIN_SECRET) -> httpx.Client:
    return httpx.Client(base_url=live, headers={"X-Auth-Token": token}, timeout=30)


def feed_counters(settings: ControllerSettings, lb_id: str, stop: threading.Event) -> None:
    """Stands in for an L7 node's reports (the lab test has real ones): growing counters."""
    db = Database(settings.database_url)
    try:
        total = 0
        while not stop.wait(0.5):
            total += 50_000
            with db.write() as session:
                node = session.scalar(select(Node).where(Node.name == "fake-l7"))
                if node is None:
                    continue
                node.lb_traffic = {
                    lb_id: {
                        "bytes_in": total,
                        "bytes_out": total,
                        "total_connections": total // 500,
                    }
                }
    finally:
        db.dispose()


def test_log_in_create_drain_diff_roll_back_and_watch_traffic(
    page: Any, live: str, settings: ControllerSettings
) -> None:
    page.goto(f"{live}/ui/loadbalancers")
    page.wait_for_url(re.compile(r".*/ui/login\?next=/ui/loadbalancers$"))
    shot(page, "login", SHOTS)
    log_in(page, live, ADMIN_SECRET)
    l4 = wizard(
        page,
        live,
        {
            "name": "web-l4",
            "kind": "l4",
            "protocol": "TCP",
            "port": "80",
            "members": "10.0.0.11 80\n10.0.0.12 80 3",
            "hm": "TCP",
        },
        shots="wizard" if SHOTS else "",
    )
    see_active(page)
    l7 = wizard(
        page,
        live,
        {
            "name": "web-l7",
            "kind": "l7",
            "protocol": "HTTP",
            "port": "8080",
            "members": "10.0.1.11 8080\n10.0.1.12 8080",
            "hm": "HTTP",
        },
    )
    see_active(page)
    assert "HTTP" in page.locator("main").inner_text()

    # Drain: the member's weight becomes 0 and the page names the new revision.
    page.goto(f"{live}/ui/loadbalancers/{l4}")
    before = int(page.locator("#revision").inner_text())
    page.locator("tr[data-member]").first.get_by_role("button", name="Drain").click()
    notice = page.locator("p.notice").inner_text()
    assert re.search(r"Member drained: revision \d+", notice)
    drained = int(notice.rsplit(" ", 1)[1])
    assert drained > before
    assert page.locator("tr[data-member]").first.locator("td").nth(1).inner_text() == "0"
    shot(page, "detail", SHOTS)

    # Diff and roll back: the newest revision's diff shows the weight change side by side.
    see_active(page)
    page.get_by_role("link", name="Revisions").click()
    shot(page, "revisions", SHOTS)
    row = page.locator("tbody tr").filter(has=page.locator(f"td:first-child:text-is('{drained}')"))
    row.get_by_role("link", name=re.compile(r"Diff with")).click()
    assert page.locator("table.diff tr.d-replace").count() >= 1
    assert "weight" in page.locator("table.diff").inner_text()
    shot(page, "diff", SHOTS)
    page.go_back()
    page.get_by_role("link", name=f"Roll back to {before}").click()
    shot(page, "rollback", SHOTS)
    page.get_by_role("button", name="Confirm rollback").click()
    assert "Rolled back: revision" in page.locator("p.notice").inner_text()
    weights = page.locator("tr[data-member] td:nth-child(2)").all_inner_texts()
    assert "0" not in weights

    # Live traffic: counters that grow make the chart's peak rise above zero.
    with httpx.Client(base_url=live, headers={"X-Auth-Token": ADMIN_SECRET}) as c:
        cred = c.post(
            "/v2/shoal/enrollments",
            json={"enrollment": {"name": "fake-l7", "role": "l7", "data_address": "198.51.100.9"}},
        ).json()["enrollment"]["credential"]
        r = c.post(
            "/v2/shoal/nodes",
            json={"name": "fake-l7", "role": "l7"},
            headers={"X-Auth-Token": cred},
        )
        assert r.status_code == 201, r.text
    stop = threading.Event()
    feeder = threading.Thread(target=feed_counters, args=(settings, l7, stop), daemon=True)
    feeder.start()
    try:
        page.goto(f"{live}/ui/loadbalancers/{l7}")
        charts = page.locator("[data-traffic]")
        wait_until(lambda: float(charts.get_attribute("data-peak") or 0) > 0, 60, "traffic")
        shot(page, "traffic", SHOTS)
    finally:
        stop.set()
        feeder.join(10)


def test_an_api_error_shows_in_place_and_names_stay_escaped(page: Any, live: str) -> None:
    with api(live) as c:
        r = c.post(
            "/v2/lbaas/loadbalancers",
            json={"loadbalancer": {"name": "<img src=x onerror=alert(1)>", "provider": "noop"}},
        )
        assert r.status_code == 201
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, live, ADMIN_SECRET)
    assert page.get_by_role("link", name="<img src=x onerror=alert(1)>").count() == 1
    shot(page, "list", SHOTS)
    page.goto(f"{live}/ui/create")
    page.get_by_label("Name", exact=True).fill("bad-port")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Port", exact=True).fill("99999")
    for _ in range(3):
        page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Create").click()
    error = page.get_by_role("alert")
    assert "protocol_port" in error.inner_text()  # the API's own line, on the wizard's page
    assert page.get_by_label("Name", exact=True).input_value() == "bad-port"
    shot(page, "wizard-error", SHOTS)
    assert dialogs == []  # no injected script ran


def test_first_useful_paint_with_1000_load_balancers(
    page: Any, live: str, settings: ControllerSettings
) -> None:
    with api(live) as c:
        for i in range(1000):
            r = c.post(
                "/v2/lbaas/loadbalancers",
                json={"loadbalancer": {"name": f"lb-{i:04d}", "provider": "noop"}},
            )
            assert r.status_code == 201, r.text
    log_in(page, live, ADMIN_SECRET)
    page.goto(f"{live}/ui/loadbalancers")
    paint = page.evaluate(FCP)
    nav = page.evaluate("() => performance.getEntriesByType('navigation')[0].toJSON()")
    assert page.locator("tbody tr").count() == 50
    Path(os.environ.get("SHOAL_CONSOLE_PAINT_FILE", "/dev/null")).write_text(
        f"first-contentful-paint {paint:.0f} ms, response {nav['responseEnd']:.0f} ms\n"
    )
    assert paint is not None and paint < 1000, (paint, nav["responseEnd"])


def report_routing(live: str) -> None:
    """An L4 node's agent reporting its BIRD's sessions (the lab test has a real BIRD)."""
    with api(live) as admin:
        body = {"enrollment": {"name": "l4-bgp", "role": "l4"}}
        secret = admin.post("/v2/shoal/enrollments", json=body).json()["enrollment"]["credential"]
    with api(live, secret) as node_api:
        node = node_api.post("/v2/shoal/nodes", json={"name": "l4-bgp", "role": "l4"}).json()
        peer = {"name": "uplink", "neighbor": "10.88.0.1", "bgp_state": "Established"}
        peer |= {"bgp_since": "12:01:03", "bfd_state": "Up", "bfd_since": "12:01:04"}
        routing = {"bird": "ok", "peers": [peer], "announced": 2}
        r = node_api.post(
            f"/v2/shoal/nodes/{node['node']['id']}/report", json={"seq": 0, "routing": routing}
        )
        assert r.status_code == 204, r.text


def test_certificates_quotas_and_admin_pages(page: Any, live: str) -> None:
    log_in(page, live, ADMIN_SECRET)
    page.goto(f"{live}/ui/certificates")
    issue = page.locator("form", has=page.get_by_role("group", name="Issue from the internal CA"))
    issue.get_by_label("Name", exact=True).fill("www")
    issue.get_by_label("Common name").fill("www.example.test")
    issue.get_by_label("Days").fill("10")  # under the warning threshold
    issue.get_by_role("button", name="Issue").click()
    assert "Certificate www stored" in page.locator("p.notice").inner_text()
    row = page.locator("tbody tr", has_text="www.example.test")
    assert "renew soon" in row.inner_text()
    pem = page.locator("form", has=page.get_by_role("group", name="Upload PEM"))
    pem.get_by_label("Certificate (PEM)").fill("not a certificate")
    pem.get_by_label("Private key (PEM)").fill("not a key")
    pem.get_by_role("button", name="Upload").click()
    assert page.get_by_role("alert").inner_text()  # the API's line, in place
    shot(page, "certificates", SHOTS)

    page.goto(f"{live}/ui/admin/quotas")
    page.get_by_label("Project id").fill("alpha")
    page.get_by_label("load_balancer", exact=True).fill("5")
    page.get_by_role("button", name="Set quota").click()
    assert "Quota of project alpha set" in page.locator("p.notice").inner_text()
    assert "alpha" in page.locator("table").inner_text()
    shot(page, "quotas", SHOTS)
    page.goto(f"{live}/ui/admin/events")
    assert page.get_by_role("heading", name="Events").count() == 1
    shot(page, "events", SHOTS)
    report_routing(live)
    page.goto(f"{live}/ui/admin/nodes")
    assert page.get_by_role("heading", name="Nodes and clusters").count() == 1
    row = page.locator("tbody tr", has_text="l4-bgp")
    assert "Established" in row.inner_text() and "BFD Up" in row.inner_text()
    shot(page, "nodes-report", SHOTS)

    # Keyboard: the skip link is the first stop and lands on the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
