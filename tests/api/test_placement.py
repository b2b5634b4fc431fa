"""L7 placement through the API: two clusters per load balancer, what each tier's agents are
told, drains, departures, joins, and the L7 nodes' health as the L4 nodes see it."""

from __future__ import annotations

from typing import Any

from ..pki import Pki
from .helpers import Api, Fleet

PKI = Pki()


def register(agent: Fleet, name: str, role: str = "l7", **fields: Any) -> dict:
    body = {"name": name, "role": role, **fields}
    return agent.ok("POST", "/v2/shoal/nodes", body, expect=201)["node"]


def desired(agent: Fleet, node: dict) -> dict:
    return agent.ok("GET", f"/v2/shoal/nodes/{node['id']}/desired-state")


def settle(agent: Fleet, nodes: list[dict]) -> None:
    for node in nodes:
        seq = desired(agent, node)["seq"]
        agent.ok("POST", f"/v2/shoal/nodes/{node['id']}/report", {"seq": seq})


def tier(agent: Fleet) -> dict[str, dict]:
    nodes = {"l4": register(agent, "l4", "l4", address="192.0.2.1")}
    for cluster in ("a", "b"):
        for i in (1, 2):
            name = f"l7{cluster}{i}"
            nodes[name] = register(
                agent,
                name,
                cluster=cluster,
                address=f"198.51.100.{len(nodes)}",
                data_address=f"10.9.0.{len(nodes)}",
                capacity=10,
            )
    return nodes


def http_lb(alice: Api) -> dict:
    lb = alice.lb(name="web")
    return lb


def placed_on(alice: Api, lb_id: str) -> dict[str, str]:
    """L7 node name -> placement state."""
    view = alice.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/nodes")
    return {n["name"]: n["placement"] for n in view["nodes"] if n.get("placement")}


def test_an_l7_lb_lands_on_one_node_in_each_of_two_clusters(alice: Api, agent: Fleet) -> None:
    nodes = tier(agent)
    lb = http_lb(alice)
    assert lb["provisioning_status"] == "PENDING_CREATE"
    where = placed_on(alice, lb["id"])
    assert len(where) == 2 and set(where.values()) == {"ACTIVE"}
    assert {name[2] for name in where} == {"a", "b"}
    # The L7 nodes it is on get it; the others do not.
    for name, node in nodes.items():
        if name == "l4":
            continue
        lbs = [x["id"] for x in desired(agent, node)["load_balancers"]]
        assert lbs == ([lb["id"]] if name in where else [])
    # The L4 tier sends its VIP to those L7 nodes' data addresses, and checks them.
    l4 = desired(agent, nodes["l4"])
    (entry,) = l4["load_balancers"]
    assert sorted(n["address"] for n in entry["l7_nodes"]) == sorted(
        nodes[name]["data_address"] for name in where
    )
    # PENDING: no new flows to a node before it has applied the load balancer.
    assert all(n["healthy"] and n["state"] == "PENDING" for n in entry["l7_nodes"])
    assert {c["node_id"] for c in l4["node_checks"]} == {
        n["id"] for k, n in nodes.items() if k != "l4"
    }
    assert all(c["port"] == 8404 for c in l4["node_checks"])
    # Provisioning completes when the L4 node and both L7 nodes applied it.
    settle(agent, [nodes["l4"], *(nodes[name] for name in where)][:2])
    assert alice.get_lb(lb["id"])["provisioning_status"] == "PENDING_CREATE"
    settle(agent, [nodes[name] for name in where])
    assert alice.get_lb(lb["id"])["provisioning_status"] == "ACTIVE"
    (entry,) = desired(agent, nodes["l4"])["load_balancers"]
    assert {n["state"] for n in entry["l7_nodes"]} == {"ACTIVE"}


def test_l7_nodes_get_the_certificates_of_their_listeners(alice: Api, agent: Fleet) -> None:
    nodes = tier(agent)
    cert = alice.ok(
        "POST", "/v2/shoal/certificates", {"certificate": PKI.upload(PKI.leaf("shop.example"))}
    )["certificate"]
    lb = http_lb(alice)
    settle(agent, list(nodes.values()))
    alice.listener(lb["id"], 443, "TERMINATED_HTTPS", default_tls_container_ref=cert["id"])
    where = placed_on(alice, lb["id"])
    for name in where:
        state = desired(agent, nodes[name])
        bundle = state["certificates"][cert["id"]]
        assert bundle.startswith("-----BEGIN CERTIFICATE-----")
        assert "PRIVATE KEY-----" in bundle
    # Neither the L4 node nor an L7 node without the load balancer sees the key.
    assert "certificates" not in desired(agent, nodes["l4"])
    other = next(n for k, n in nodes.items() if k != "l4" and k not in where)
    assert desired(agent, other)["certificates"] == {}


def test_draining_an_l7_node_moves_its_lbs_inside_the_cluster(
    alice: Api, agent: Fleet, admin: Api
) -> None:
    nodes = tier(agent)
    lb = http_lb(alice)
    settle(agent, list(nodes.values()))
    where = placed_on(alice, lb["id"])
    drained = next(name for name in where if name.startswith("l7a"))
    sibling = "l7a2" if drained == "l7a1" else "l7a1"
    admin.ok("PUT", f"/v2/shoal/nodes/{nodes[drained]['id']}", {"admin_state": "DRAINING"})
    now = placed_on(alice, lb["id"])
    assert now[drained] == "DRAINING" and now[sibling] == "ACTIVE"
    # The drained node still holds the load balancer (finishing what it serves); the L4
    # tier sends it no new flows.
    assert desired(agent, nodes[drained])["load_balancers"][0]["placement"] == "DRAINING"

    def l4_view() -> dict[str, dict]:
        entry = desired(agent, nodes["l4"])["load_balancers"][0]
        return {n["id"]: n for n in entry["l7_nodes"]}

    assert l4_view()[nodes[drained]["id"]]["state"] == "DRAINING"
    assert l4_view()[nodes[sibling]["id"]]["state"] == "PENDING"
    settle(agent, [nodes[sibling]])
    assert l4_view()[nodes[sibling]["id"]]["state"] == "ACTIVE"
    kinds = {
        e["kind"] for e in alice.ok("GET", "/v2/shoal/events", load_balancer_id=lb["id"])["events"]
    }
    assert {"placement_draining", "placed"} <= kinds


def test_a_deleted_node_is_replaced_and_a_new_one_gets_a_share(
    alice: Api, agent: Fleet, admin: Api
) -> None:
    nodes = tier(agent)
    lbs = [alice.lb(name=f"web{i}") for i in range(6)]
    for node in nodes.values():
        assert len(desired(agent, node)["load_balancers"]) == (6 if node["role"] == "l4" else 3)
    victim = nodes["l7b1"]
    admin.ok("DELETE", f"/v2/shoal/nodes/{victim['id']}")
    for lb in lbs:
        where = placed_on(alice, lb["id"])
        assert "l7b1" not in where and {name[2] for name in where} == {"a", "b"}
    assert len(desired(agent, nodes["l7b2"])["load_balancers"]) == 6
    # A node joining cluster b takes load off l7b2 (moves drain, they do not cut).
    fresh = register(agent, "l7b3", cluster="b", data_address="10.9.0.99", capacity=10)
    mine = desired(agent, fresh)["load_balancers"]
    assert len(mine) == 3 and all(x["placement"] == "ACTIVE" for x in mine)
    states = [x["placement"] for x in desired(agent, nodes["l7b2"])["load_balancers"]]
    assert sorted(states) == ["ACTIVE"] * 3 + ["DRAINING"] * 3


def test_full_tier_leaves_the_lb_in_error_with_a_reason(alice: Api, agent: Fleet) -> None:
    register(agent, "tiny", cluster="a", data_address="10.9.0.1", capacity=1)
    alice.lb(name="first")
    second = alice.lb(name="second")
    assert second["provisioning_status"] == "ERROR"
    tree = alice.ok("GET", f"/v2/lbaas/loadbalancers/{second['id']}/status")["statuses"]
    assert "no L7 node has free capacity" in tree["loadbalancer"]["provisioning_reason"]


def test_l4_checks_decide_an_l7_nodes_health(alice: Api, agent: Fleet, admin: Api) -> None:
    nodes = tier(agent)
    lb = http_lb(alice)
    target = nodes[next(iter(placed_on(alice, lb["id"])))]

    def post(ok: bool) -> None:
        agent.ok(
            "POST",
            f"/v2/shoal/nodes/{nodes['l4']['id']}/health",
            {"results": [{"node_id": target["id"], "ok": ok, "detail": "connection refused"}]},
        )

    def seen() -> bool:
        entry = desired(agent, nodes["l4"])["load_balancers"][0]
        return next(n["healthy"] for n in entry["l7_nodes"] if n["id"] == target["id"])

    post(False)
    assert seen()  # one failure is not enough (fall 2)
    post(False)
    assert not seen()
    assert admin.ok("GET", f"/v2/shoal/nodes/{target['id']}")["node"]["health"] == "DOWN"
    post(True)
    post(True)
    assert seen()
    r = agent.request(
        "POST",
        f"/v2/shoal/nodes/{nodes['l4']['id']}/health",
        {"results": [{"node_id": target["id"], "member_id": "x", "ok": True}]},
    )
    assert r.status_code == 400 and "exactly one" in r.json()["faultstring"]


def test_l7_nodes_report_member_health_as_haproxy_decided_it(alice: Api, agent: Fleet) -> None:
    nodes = tier(agent)
    lb = http_lb(alice)
    settle(agent, list(nodes.values()))
    li = alice.listener(lb["id"], 80, "HTTP")
    settle(agent, list(nodes.values()))
    pool = alice.pool(li["id"], "HTTP", "ROUND_ROBIN")
    settle(agent, list(nodes.values()))
    member = alice.member(pool["id"], "10.1.0.1", 80)
    settle(agent, list(nodes.values()))
    alice.monitor(pool["id"], "HTTP")
    settle(agent, list(nodes.values()))
    # No L4 node is asked to check an L7 load balancer's members: HAProxy does.
    assert desired(agent, nodes["l4"])["load_balancers"][0]["health_checks"] == []
    node = nodes[next(iter(placed_on(alice, lb["id"])))]
    agent.ok(
        "POST",
        f"/v2/shoal/nodes/{node['id']}/health",
        {"results": [{"member_id": member["id"], "ok": False, "decided": True}]},
    )
    got = alice.ok("GET", f"/v2/lbaas/pools/{pool['id']}/members/{member['id']}")["member"]
    assert got["operating_status"] == "ERROR"  # at once: HAProxy applied rise/fall already


def test_stats_of_an_l7_lb_are_the_l7_nodes_counters(alice: Api, agent: Fleet) -> None:
    nodes = tier(agent)
    lb = http_lb(alice)
    settle(agent, list(nodes.values()))
    li = alice.listener(lb["id"], 80, "HTTP")
    counters = {
        "load_balancers": {
            lb["id"]: {
                "bytes_in": 100,
                "bytes_out": 1000,
                "active_connections": 2,
                "total_connections": 7,
                "request_errors": 1,
                "listeners": {
                    li["id"]: {
                        "bytes_in": 100,
                        "bytes_out": 1000,
                        "active_connections": 2,
                        "total_connections": 7,
                        "request_errors": 1,
                    }
                },
            }
        }
    }
    for name in placed_on(alice, lb["id"]):
        node = nodes[name]
        seq = desired(agent, node)["seq"]
        agent.ok("POST", f"/v2/shoal/nodes/{node['id']}/report", {"seq": seq, "counters": counters})
    # The L4 node's packets at the VIP are not added in (they are the same requests).
    l4_counters = {"load_balancers": {lb["id"]: {"bytes_in": 5000, "packets_in": 50}}}
    seq = desired(agent, nodes["l4"])["seq"]
    agent.ok(
        "POST",
        f"/v2/shoal/nodes/{nodes['l4']['id']}/report",
        {"seq": seq, "counters": l4_counters},
    )
    stats = alice.ok("GET", f"/v2/lbaas/loadbalancers/{lb['id']}/stats")["stats"]
    assert stats == {
        "bytes_in": 200,
        "bytes_out": 2000,
        "active_connections": 4,
        "total_connections": 14,
        "request_errors": 2,
    }
    per_listener = alice.ok("GET", f"/v2/lbaas/listeners/{li['id']}/stats")["stats"]
    assert per_listener["total_connections"] == 14
