"""The Octavia surface: shapes, status codes, defaults, cascade delete, status tree, errors."""

from __future__ import annotations

import pytest

from .helpers import Api


def test_version_document_and_healthcheck_need_no_token(client) -> None:
    doc = client.get("/").json()
    assert {v["status"] for v in doc["versions"]} == {"CURRENT", "SUPPORTED"}
    assert all(link["href"].startswith("http") for v in doc["versions"] for link in v["links"])
    assert client.get("/healthcheck").text == "OK"
    r = client.get("/v2/lbaas/loadbalancers")
    assert r.status_code == 401
    assert r.json() == {
        "faultcode": "Client",
        "faultstring": "authentication required: send an X-Auth-Token header",
        "debuginfo": None,
    }


def test_create_get_list_update_delete(alice: Api) -> None:
    lb = alice.lb(name="web", description="front", tags=["prod"])
    # An L7 load balancer needs L7 nodes; with none registered it cannot be placed.
    assert lb["provisioning_status"] == "ERROR"
    tree = alice.ok("GET", f"/v2/lbaas/loadbalancers/{lb['id']}/status")["statuses"]
    assert "not placed" in tree["loadbalancer"]["provisioning_reason"]
    default_pool = alice.ok("GET", "/v2/shoal/vip-pools/default")["vip_pool"]
    assert lb["vip_address"] == "10.200.0.1" and lb["vip_subnet_id"] == default_pool["id"]
    assert lb["project_id"] == "alpha" and lb["tenant_id"] == "alpha"
    assert lb["flavor_id"] == "5b0a1e4d-0000-4000-8000-000000000007"  # l7 by default
    second = alice.lb(name="api", vip_address="10.200.9.9")
    assert second["vip_address"] == "10.200.9.9"
    listing = alice.ok("GET", "/v2/lbaas/loadbalancers")
    assert {x["name"] for x in listing["loadbalancers"]} == {"web", "api"}
    assert listing["loadbalancers_links"] == []
    assert [
        x["name"] for x in alice.ok("GET", "/v2/lbaas/loadbalancers", name="api")["loadbalancers"]
    ] == ["api"]
    page = alice.ok("GET", "/v2/lbaas/loadbalancers", limit=1)
    assert len(page["loadbalancers"]) == 1 and page["loadbalancers_links"][0]["rel"] == "next"
    rest = alice.ok(
        "GET", "/v2/lbaas/loadbalancers", limit=1, marker=page["loadbalancers"][0]["id"]
    )
    assert rest["loadbalancers"][0]["id"] != page["loadbalancers"][0]["id"]
    updated = alice.ok(
        "PUT",
        f"/v2/lbaas/loadbalancers/{lb['id']}",
        {"loadbalancer": {"name": "www", "admin_state_up": False}},
    )["loadbalancer"]
    assert updated["name"] == "www" and updated["operating_status"] == "OFFLINE"
    r = alice.request("DELETE", f"/v2/lbaas/loadbalancers/{lb['id']}")
    assert r.status_code == 204
    assert alice.request("GET", f"/v2/lbaas/loadbalancers/{lb['id']}").status_code == 404
    assert alice.lb()["vip_address"] == "10.200.0.1"  # the freed VIP is reused


def test_full_tree_status_and_v2_0_alias(alice: Api) -> None:
    stack = alice.l4_stack(members=2)
    alice.monitor(stack["pool"]["id"])
    lb_id = stack["lb"]["id"]
    tree = alice.ok("GET", f"/v2.0/lbaas/loadbalancers/{lb_id}/status")["statuses"]
    node = tree["loadbalancer"]
    assert node["provisioning_status"] == "ACTIVE"
    (listener,) = node["listeners"]
    (pool,) = listener["pools"]
    assert pool["health_monitor"]["type"] == "TCP"
    assert {m["address"] for m in pool["members"]} == {"10.1.0.1", "10.1.0.2"}
    assert {m["operating_status"] for m in pool["members"]} == {"NO_MONITOR"}
    stats = alice.ok("GET", f"/v2/lbaas/loadbalancers/{lb_id}/stats")["stats"]
    assert stats == {
        "bytes_in": 0,
        "bytes_out": 0,
        "active_connections": 0,
        "total_connections": 0,
        "request_errors": 0,
    }


def test_delete_with_children_needs_cascade(alice: Api) -> None:
    stack = alice.l4_stack()
    lb_id = stack["lb"]["id"]
    r = alice.request("DELETE", f"/v2/lbaas/loadbalancers/{lb_id}")
    assert r.status_code == 400 and "has children" in r.json()["faultstring"]
    assert alice.get_lb(lb_id)["provisioning_status"] == "ACTIVE"
    assert (
        alice.request("DELETE", f"/v2/lbaas/loadbalancers/{lb_id}", cascade="true").status_code
        == 204
    )
    for path in (
        f"/v2/lbaas/loadbalancers/{lb_id}",
        f"/v2/lbaas/pools/{stack['pool']['id']}",
        f"/v2/lbaas/listeners/{stack['listener']['id']}",
    ):
        assert alice.request("GET", path).status_code == 404
    revisions = alice.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions")["revisions"]
    assert revisions[0]["deleted"] is True  # history outlives the load balancer


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_address": "10.0.0.999"}}, "vip_address"),
        ("/v2/lbaas/loadbalancers", {"loadbalancer": {"flavor_id": "xl"}}, "flavor xl"),
        ("/v2/lbaas/loadbalancers", {"loadbalancer": {"bogus": 1}}, "bogus"),
        ("/v2/lbaas/loadbalancers", {"loadbalancer": {"name": "x" * 300}}, "name"),
        ("/v2/lbaas/loadbalancers", {"lb": {}}, "loadbalancer"),
        ("/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "nope"}}, "VIP pool"),
    ],
)
def test_invalid_requests_name_the_field(alice: Api, path: str, body: dict, needle: str) -> None:
    r = alice.request("POST", path, body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["faultstring"]


def test_l4_rules_are_enforced_with_clear_messages(alice: Api) -> None:
    stack = alice.l4_stack(members=1)
    lb_id, pool_id = stack["lb"]["id"], stack["pool"]["id"]
    cases = [
        (
            "POST",
            "/v2/lbaas/listeners",
            {"listener": {"loadbalancer_id": lb_id, "protocol": "HTTP", "protocol_port": 81}},
            "L4 load balancer takes TCP and UDP listeners",
        ),
        (
            "POST",
            "/v2/lbaas/pools",
            {"pool": {"loadbalancer_id": lb_id, "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN"}},
            "ROUND_ROBIN is not available on an L4 load balancer",
        ),
        (
            "POST",
            f"/v2/lbaas/pools/{pool_id}/members",
            {"member": {"address": "10.1.0.7", "protocol_port": 8080}},
            "must equal the listener",
        ),
        (
            "POST",
            "/v2/lbaas/listeners",
            {"listener": {"loadbalancer_id": lb_id, "protocol": "TCP", "protocol_port": 80}},
            "already using protocol_port 80",
        ),
    ]
    revision = alice.get_lb(lb_id)
    for method, path, body, needle in cases:
        r = alice.request(method, path, body)
        assert r.status_code in (400, 409, 501), r.text  # 501: the provider cannot serve it
        assert needle in r.json()["faultstring"], r.text
    revs = alice.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions")["revisions"]
    assert len(revs) == 4  # create, listener, pool, member: the refused writes left nothing
    assert alice.get_lb(lb_id)["provisioning_status"] == revision["provisioning_status"]


def test_udp_needs_l4_and_l7_refuses_it(alice: Api) -> None:
    l7 = alice.lb()
    r = alice.request(
        "POST",
        "/v2/lbaas/listeners",
        {"listener": {"loadbalancer_id": l7["id"], "protocol": "UDP", "protocol_port": 53}},
    )
    assert r.status_code == 501 and "need an L4 load balancer" in r.json()["faultstring"]
    assert "Provider 'shoal' does not support a requested option" in r.json()["faultstring"]
    l4 = alice.lb(flavor_id="l4")
    li = alice.listener(l4["id"], 53, "UDP")
    pool = alice.pool(li["id"], "UDP", "SOURCE_IP")
    alice.monitor(pool["id"], "UDP-CONNECT")
    assert alice.member(pool["id"], "10.1.0.1", 53)["operating_status"] == "NO_MONITOR"


def test_batch_member_update(alice: Api) -> None:
    stack = alice.l4_stack(members=3)
    pool_id = stack["pool"]["id"]
    keep = stack["members"][0]
    body = {
        "members": [
            {"address": keep["address"], "protocol_port": 80, "weight": 5},
            {"address": "10.1.0.50", "protocol_port": 80},
        ]
    }
    assert alice.request("PUT", f"/v2/lbaas/pools/{pool_id}/members", body).status_code == 202
    members = alice.ok("GET", f"/v2/lbaas/pools/{pool_id}/members")["members"]
    by_addr = {m["address"]: m for m in members}
    assert set(by_addr) == {keep["address"], "10.1.0.50"}
    assert by_addr[keep["address"]]["id"] == keep["id"] and by_addr[keep["address"]]["weight"] == 5


def test_l7_policies_rules_and_positions(alice: Api) -> None:
    lb = alice.lb()
    li = alice.listener(lb["id"], 80, "HTTP")
    pool = alice.pool(li["id"], "HTTP", "ROUND_ROBIN")

    def mk(**f):
        return alice.ok(
            "POST",
            "/v2/lbaas/l7policies",
            {
                "l7policy": {
                    "listener_id": li["id"],
                    **f,
                }
            },
            expect=201,
        )["l7policy"]

    first = mk(action="REJECT")
    second = mk(action="REDIRECT_TO_POOL", redirect_pool_id=pool["id"], position=1)
    assert alice.ok("GET", f"/v2/lbaas/l7policies/{second['id']}")["l7policy"]["position"] == 1
    assert alice.ok("GET", f"/v2/lbaas/l7policies/{first['id']}")["l7policy"]["position"] == 2
    rule = alice.ok(
        "POST",
        f"/v2/lbaas/l7policies/{second['id']}/rules",
        {"rule": {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"}},
        expect=201,
    )["rule"]
    assert rule["invert"] is False
    r = alice.request(
        "POST",
        f"/v2/lbaas/l7policies/{second['id']}/rules",
        {"rule": {"type": "HEADER", "compare_type": "EQUAL_TO", "value": "x"}},
    )
    assert r.status_code == 400 and "needs a key" in r.json()["faultstring"]
    r = alice.request(
        "POST",
        f"/v2/lbaas/l7policies/{second['id']}/rules",
        {"rule": {"type": "PATH", "compare_type": "REGEX", "value": "(["}},
    )
    assert r.status_code == 400 and "regular expression" in r.json()["faultstring"]
    r = alice.request(
        "POST",
        "/v2/lbaas/l7policies",
        {"l7policy": {"listener_id": li["id"], "action": "REDIRECT_TO_URL"}},
    )
    assert r.status_code == 400 and "needs redirect_url" in r.json()["faultstring"]
    rules = alice.ok("GET", f"/v2/lbaas/l7policies/{second['id']}/rules")["rules"]
    assert [x["id"] for x in rules] == [rule["id"]]
    assert alice.request("DELETE", f"/v2/lbaas/l7policies/{second['id']}").status_code == 204
    assert alice.ok("GET", f"/v2/lbaas/l7policies/{first['id']}")["l7policy"]["position"] == 1
    # Octavia's inline rules: the policy and its rules in one revision.
    inline = mk(
        action="REJECT",
        rules=[
            {"type": "HEADER", "key": "X-Debug", "compare_type": "EQUAL_TO", "value": "1"},
            {"type": "PATH", "compare_type": "ENDS_WITH", "value": ".php"},
        ],
    )
    assert len(inline["rules"]) == 2
    listed = alice.ok("GET", f"/v2/lbaas/l7policies/{inline['id']}/rules")["rules"]
    assert {x["type"] for x in listed} == {"HEADER", "PATH"}
    # A key is written into HAProxy's configuration unquoted: only token characters.
    r = alice.request(
        "POST",
        f"/v2/lbaas/l7policies/{inline['id']}/rules",
        {"rule": {"type": "HEADER", "key": "X)#", "compare_type": "EQUAL_TO", "value": "1"}},
    )
    assert r.status_code == 400 and "key" in r.json()["faultstring"]
