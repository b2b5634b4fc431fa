"""The console against the whole lab (real L4 and L7 nodes, real traffic), in headless
Chromium: create L4 and L7 load balancers through the wizard, see them ACTIVE, drain a
member, diff and roll back, and see the traffic chart move while the client sends requests.
Heavy: `make test-console`, not in `make test` (tests/console has the fast version)."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from shoal import netns
from shoal.lab.forward import Forwarder
from shoal.lab.lab import CONTROLLER_PORT, Lab
from shoal.lab.traffic import http_requests
from tests.console.browser import (
    chromium_page,
    log_in,
    need_browser,
    see_active,
    shot,
    wait_until,
    wizard,
)

from .conftest import FIGURES

pytestmark = [pytest.mark.netns, pytest.mark.console_lab]


@pytest.mark.timeout(1200)
def test_the_console_drives_the_lab(lab: Lab) -> None:
    sync_api = need_browser()
    backends = [lab.state.hosts[b]["ip"] for b in ("b1", "b2")]
    members = "\n".join(f"{ip} 80" for ip in backends)
    with (
        Forwarder(("127.0.0.1", 0), lab.state.ctl_ns, ("127.0.0.1", CONTROLLER_PORT)) as fwd,
        chromium_page(sync_api, lab_ca=True) as page,
    ):
        live = f"https://127.0.0.1:{fwd.address[1]}"
        log_in(page, live, lab.state.admin_token)
        l4 = wizard(
            page,
            live,
            {
                "name": "ui-l4",
                "kind": "l4",
                "protocol": "TCP",
                "port": "80",
                "members": members,
                "hm": "TCP",
            },
            provider="shoal",
        )
        see_active(page)
        l7 = wizard(
            page,
            live,
            {
                "name": "ui-l7",
                "kind": "l7",
                "protocol": "HTTP",
                "port": "80",
                "members": members,
                "hm": "HTTP",
            },
            provider="shoal",
        )
        see_active(page)

        page.goto(f"{live}/ui/loadbalancers/{l4}")
        before = int(page.locator("#revision").inner_text())
        page.locator("tr[data-member]").first.get_by_role("button", name="Drain").click()
        notice = page.locator("p.notice").inner_text()
        drained = int(re.search(r"revision (\d+)", notice).group(1))  # type: ignore[union-attr]
        assert drained > before
        see_active(page)
        page.goto(f"{live}/ui/loadbalancers/{l4}/revisions/{drained}/diff")
        assert "weight" in page.locator("table.diff").inner_text()
        page.goto(f"{live}/ui/loadbalancers/{l4}/revisions/{before}/rollback")
        page.get_by_role("button", name="Confirm rollback").click()
        assert "Rolled back: revision" in page.locator("p.notice").inner_text()
        see_active(page)

        vip = _vip(lab, l4)
        stop = threading.Event()
        sender = threading.Thread(target=_traffic, args=(lab, vip, stop), daemon=True)
        sender.start()
        try:
            page.goto(f"{live}/ui/loadbalancers/{l4}")
            charts = page.locator("[data-traffic]")
            wait_until(
                lambda: float(charts.get_attribute("data-peak") or 0) > 0, 90, "the chart to move"
            )
            FIGURES["console: VIP chart peak while the lab sent requests (B/s)"] = (
                charts.get_attribute("data-peak")
            )
            shot(page, "lab-traffic", True)
            # Per member, from the L4 nodes' per-backend reports (they report every round).
            wait_until(
                lambda: sum(m["packets_in"] for m in _traffic_json(page, l4)["members"].values()),
                120,
                "per-member packets from the L4 nodes",
            )
            assert page.locator("#member-legend li").count() >= 1
        finally:
            stop.set()
            sender.join(60)
        page.goto(f"{live}/ui/loadbalancers/{l7}")
        assert "ACTIVE" in page.locator("#provisioning").inner_text()
        page.goto(f"{live}/ui/admin/nodes")
        shot(page, "nodes", True)
        assert page.locator("tbody tr").count() >= 3
        for name in ("l4a", "l4b"):  # their real BIRD's sessions to the router
            row = page.locator("tbody tr", has=page.get_by_role("cell", name=name, exact=True))
            text = row.inner_text()
            assert "BGP Established" in text and "BFD Up" in text, text


def _traffic_json(page: Any, lb_id: str) -> Any:
    return page.evaluate(
        "async (u) => (await fetch(u, {credentials: 'same-origin'})).json()",
        f"/ui/loadbalancers/{lb_id}/traffic",
    )


def _vip(lab: Lab, lb_id: str) -> str:
    return str(lab.api("GET", f"/v2/lbaas/loadbalancers/{lb_id}")["loadbalancer"]["vip_address"])


def _traffic(lab: Lab, vip: str, stop: threading.Event) -> None:
    """Bounded: at most 20 rounds of 50 requests, each round at most 20 s."""
    with netns.entered(lab.state.hosts["client"]["ns"]):
        for _ in range(20):
            if stop.is_set():
                return
            http_requests(vip, 50, deadline=20)
