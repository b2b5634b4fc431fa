"""The console over HTTP: login and its cookie, CSRF, project isolation, escaping, and the
API's errors shown in place."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import ADMIN_SECRET, Api


def login(client: TestClient, token: str) -> None:
    r = client.post("/ui/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text


def csrf_of(client: TestClient, path: str = "/ui/create") -> str:
    page = client.get(path).text
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def noop_lb(api: Api, name: str) -> dict[str, Any]:
    return api.lb(name=name, provider="noop")


def test_login_sets_a_strict_httponly_secure_cookie_and_no_token_in_the_url(
    client: TestClient,
) -> None:
    r = client.post("/ui/login", data={"token": ADMIN_SECRET}, follow_redirects=False)
    assert r.status_code == 303
    assert ADMIN_SECRET not in r.headers["location"]
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=strict" in cookie
    assert "Path=/ui" in cookie
    assert ADMIN_SECRET not in cookie  # sealed, not the token in clear
    assert client.get("/ui/loadbalancers").status_code == 200


def test_pages_need_a_login_and_a_wrong_token_is_refused(client: TestClient) -> None:
    r = client.get("/ui/loadbalancers", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=/ui/loadbalancers"
    r = client.post("/ui/login", data={"token": "not-a-token"})
    assert r.status_code == 401 and "the token is not valid" in r.text
    assert client.get("/ui/loadbalancers", follow_redirects=False).status_code == 303


def test_a_tampered_cookie_is_no_session(client: TestClient) -> None:
    login(client, ADMIN_SECRET)
    value = client.cookies.get("shoal_console")
    assert value
    client.cookies.clear()
    client.cookies.set("shoal_console", value[:-6] + "AAAAAA", path="/ui")
    assert client.get("/ui/loadbalancers", follow_redirects=False).status_code == 303


def test_login_never_redirects_off_the_console(client: TestClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/ui/\\evil"):
        r = client.post(
            "/ui/login", data={"token": ADMIN_SECRET, "next": target}, follow_redirects=False
        )
        assert r.headers["location"] == "/ui/loadbalancers"


def test_a_post_without_the_csrf_token_is_refused(client: TestClient, admin: Api) -> None:
    login(client, ADMIN_SECRET)
    form = {"name": "csrf-test", "kind": "l4", "protocol": "TCP", "protocol_port": "80"}
    assert client.post("/ui/create", data=form).status_code == 403
    assert client.post("/ui/create", data={**form, "csrf": "forged"}).status_code == 403
    assert admin.ok("GET", "/v2/lbaas/loadbalancers", name="csrf-test")["loadbalancers"] == []
    assert client.post("/ui/logout", data={}).status_code == 403  # logout too


def test_a_tenant_cannot_see_or_act_on_another_projects_objects(
    client: TestClient, admin: Api
) -> None:
    bob = admin.with_token(admin.token("bob", "beta", "member"))
    lb = noop_lb(bob, "bobs-lb")
    alice_secret = admin.token("alice", "alpha", "member")
    login(client, alice_secret)
    assert "bobs-lb" not in client.get("/ui/loadbalancers").text
    page = client.get(f"/ui/loadbalancers/{lb['id']}")
    assert page.status_code == 404 and "could not be found" in page.text
    assert client.get(f"/ui/loadbalancers/{lb['id']}/traffic").status_code == 404
    assert client.get(f"/ui/loadbalancers/{lb['id']}/revisions").status_code == 404
    csrf = csrf_of(client)
    r = client.post(f"/ui/loadbalancers/{lb['id']}/revisions/1/rollback", data={"csrf": csrf})
    assert r.status_code == 404
    assert client.get("/ui/admin/nodes").status_code == 403  # the API's admin check


def test_a_script_in_a_name_renders_escaped(client: TestClient, admin: Api) -> None:
    lb = noop_lb(admin, "<script>alert(1)</script>")
    login(client, ADMIN_SECRET)
    for path in ("/ui/loadbalancers", f"/ui/loadbalancers/{lb['id']}"):
        page = client.get(path)
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]


def test_the_wizard_shows_the_apis_error_in_place(client: TestClient) -> None:
    login(client, ADMIN_SECRET)
    form = {
        "csrf": csrf_of(client),
        "name": "bad-port",
        "kind": "l4",
        "protocol": "TCP",
        "protocol_port": "99999",
        "lb_algorithm": "ROUND_ROBIN",
    }
    page = client.post("/ui/create", data=form)
    assert page.status_code == 400
    line = re.search(r'id="api-error">([^<]+)<', page.text)
    assert line and "protocol_port" in line.group(1)
    assert 'value="bad-port"' in page.text  # what was typed stays


def test_the_wizard_makes_an_l4_load_balancer_and_members_change_by_revision(
    client: TestClient, admin: Api
) -> None:
    login(client, ADMIN_SECRET)
    form = {
        "csrf": csrf_of(client),
        "name": "web",
        "kind": "l4",
        "provider": "noop",
        "protocol": "TCP",
        "protocol_port": "80",
        "lb_algorithm": "ROUND_ROBIN",
        "members": "10.0.0.1 80\n10.0.0.2 80 5\n",
        "hm_type": "TCP",
        "hm_delay": "5",
        "hm_timeout": "3",
        "hm_max_retries": "3",
    }
    r = client.post("/ui/create", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    lb_id = r.headers["location"].rsplit("/", 1)[1]
    pools = admin.ok("GET", "/v2/lbaas/pools", loadbalancer_id=lb_id)["pools"]
    assert len(pools) == 1 and pools[0]["healthmonitor_id"]
    members = admin.ok("GET", f"/v2/lbaas/pools/{pools[0]['id']}/members")["members"]
    assert sorted(m["weight"] for m in members) == [1, 5]
    admin_api_wait_active(admin, lb_id)
    member = members[0]
    r = client.post(
        f"/ui/loadbalancers/{lb_id}/pools/{pools[0]['id']}/members/{member['id']}",
        data={"csrf": csrf_of(client), "action": "drain"},
        follow_redirects=False,
    )
    # Post, redirect, get: reloading the page that follows never drains again.
    assert r.status_code == 303 and "done=drained" in r.headers["location"]
    page = client.get(r.headers["location"])
    assert page.status_code == 200, page.text
    assert re.search(r"Member drained: revision \d+", page.text)
    got = admin.ok("GET", f"/v2/lbaas/pools/{pools[0]['id']}/members/{member['id']}")
    assert got["member"]["weight"] == 0


def admin_api_wait_active(api: Api, lb_id: str) -> None:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lb = api.ok("GET", f"/v2/lbaas/loadbalancers/{lb_id}")["loadbalancer"]
        if lb["provisioning_status"] == "ACTIVE":
            return
        time.sleep(0.1)
    pytest.fail(f"load balancer {lb_id} did not become ACTIVE")


def test_no_token_reaches_the_logs(
    client: TestClient, admin: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    login(client, ADMIN_SECRET)
    noop_lb(admin, "logged")
    client.get("/ui/loadbalancers")
    client.post("/ui/create", data={"csrf": "x"})
    assert ADMIN_SECRET not in caplog.text


def test_a_made_up_kind_is_the_apis_400_not_a_500(client: TestClient) -> None:
    login(client, ADMIN_SECRET)
    form = {"csrf": csrf_of(client), "name": "x", "kind": "l9", "protocol": "TCP"}
    page = client.post("/ui/create", data=form)
    assert page.status_code == 400
    assert "flavor l9 does not exist" in page.text


def test_the_nodes_page_shows_flood_events_and_digest_agreement(
    client: TestClient, admin: Api
) -> None:
    from tests.api.helpers import Fleet

    fleet = Fleet(admin)
    node = fleet.ok("POST", "/v2/shoal/nodes", {"name": "l4x", "role": "l4"})["node"]
    event = {"kind": "flood_mode_entered", "severity": "warning", "message": "SYN flood on cpu 0"}
    fleet.ok("POST", f"/v2/shoal/nodes/{node['id']}/events", {"events": [event]})
    login(client, ADMIN_SECRET)
    page = client.get("/ui/admin/nodes")
    assert page.status_code == 200
    assert "SYN flood on cpu 0" in page.text and "l4x" in page.text


def test_a_login_posted_from_another_site_is_refused(client: TestClient) -> None:
    r = client.post(
        "/ui/login",
        data={"token": ADMIN_SECRET},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "set-cookie" not in r.headers
    hidden = client.post("/ui/login", data={"token": ADMIN_SECRET}, headers={"Origin": "null"})
    assert hidden.status_code == 403
    r = client.post(
        "/ui/login",
        data={"token": ADMIN_SECRET},
        headers={"Origin": "https://testserver"},
        follow_redirects=False,
    )
    assert r.status_code == 303


def test_the_nodes_page_shows_each_peers_bgp_and_bfd_state(client: TestClient, admin: Api) -> None:
    from tests.api.helpers import Fleet

    fleet = Fleet(admin)
    up = fleet.ok("POST", "/v2/shoal/nodes", {"name": "l4-up", "role": "l4"})["node"]
    down = fleet.ok("POST", "/v2/shoal/nodes", {"name": "l4-lost", "role": "l4"})["node"]
    peer = {
        "name": "uplink",
        "neighbor": "10.88.0.1",
        "bgp_state": "Established",
        "bgp_since": "12:01:03.456",
        "bfd_state": "Up",
        "bfd_since": "12:01:03.500",
    }
    routing = {"bird": "ok", "peers": [peer, {**peer, "name": "<b>x</b>", "bfd_state": ""}]}
    fleet.ok(
        "POST",
        f"/v2/shoal/nodes/{up['id']}/report",
        {"seq": 0, "routing": {**routing, "announced": 7}},
    )
    broken = {"bird": "unknown", "error": "birdc: cannot connect"}
    fleet.ok("POST", f"/v2/shoal/nodes/{down['id']}/report", {"seq": 0, "routing": broken})
    login(client, ADMIN_SECRET)
    page = client.get("/ui/admin/nodes").text
    row_up = page[page.index("l4-up") :].split("</tr>")[0]
    assert "uplink" in row_up and "Established" in row_up and "since 12:01:03.456" in row_up
    assert "BFD" in row_up and ">Up<" in row_up and ">7<" in row_up
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page  # escaped
    row_lost = page[page.index("l4-lost") :].split("</tr>")[0]
    assert "unknown" in row_lost and "birdc: cannot connect" in row_lost


def test_l4_member_traffic_is_summed_over_nodes_per_member(client: TestClient, admin: Api) -> None:
    from tests.api.helpers import Fleet

    stack = admin.l4_stack(members=2, provider="noop")
    lb_id = stack["lb"]["id"]
    other = admin.l4_stack(members=1, provider="noop")["lb"]["id"]
    port = stack["listener"]["protocol_port"]
    vip = f"tcp://{stack['lb']['vip_address']}:{port}"
    m1, m2 = stack["members"]
    fleet = Fleet(admin)
    for name, packets in (("l4-a", 10), ("l4-b", 5)):
        node = fleet.ok("POST", "/v2/shoal/nodes", {"name": name, "role": "l4"})["node"]
        backends = [
            {
                "load_balancer_id": lb_id,
                "vip": vip,
                "address": m1["address"],
                "packets": packets,
                "bytes": packets * 100,
            },
            {
                "load_balancer_id": lb_id,
                "vip": vip,
                "address": m2["address"],
                "packets": 1,
                "bytes": 60,
            },
            # another load balancer's backend, and one of a port this LB has no listener on
            {"load_balancer_id": other, "vip": vip, "address": m1["address"], "packets": 999},
            {"load_balancer_id": lb_id, "vip": f"{vip}9", "address": m1["address"], "packets": 7},
        ]
        fleet.ok("POST", f"/v2/shoal/nodes/{node['id']}/report", {"seq": 0, "backends": backends})
        # A later report without traffic (the agent sends it every few seconds, not with
        # every change) keeps the node's last figures.
        fleet.ok("POST", f"/v2/shoal/nodes/{node['id']}/report", {"seq": 0})
    login(client, ADMIN_SECRET)
    body = client.get(f"/ui/loadbalancers/{lb_id}/traffic").json()
    assert body["member_metric"] == "packets_in"
    assert body["members"] == {
        m1["id"]: {"packets_in": 15, "bytes_in": 1500},
        m2["id"]: {"packets_in": 2, "bytes_in": 120},
    }
    # An empty list is a report of no traffic at all: it replaces the last one.
    fleet.ok("POST", f"/v2/shoal/nodes/{node['id']}/report", {"seq": 0, "backends": []})
    body = client.get(f"/ui/loadbalancers/{lb_id}/traffic").json()
    assert body["members"] == {
        m1["id"]: {"packets_in": 10, "bytes_in": 1000},
        m2["id"]: {"packets_in": 1, "bytes_in": 60},
    }


def test_a_node_report_with_too_many_backends_is_refused(admin: Api) -> None:
    from shoal.wire.report import MAX_BACKENDS
    from tests.api.helpers import Fleet

    fleet = Fleet(admin)
    node = fleet.ok("POST", "/v2/shoal/nodes", {"name": "l4-big", "role": "l4"})["node"]
    one = {"load_balancer_id": "x", "vip": "tcp://10.0.0.1:80", "address": "10.1.0.1"}
    r = fleet.request(
        "POST",
        f"/v2/shoal/nodes/{node['id']}/report",
        {"seq": 0, "backends": [one] * (MAX_BACKENDS + 1)},
    )
    assert 400 <= r.status_code < 500 and "Traceback" not in r.text
