"""A node's credential played by an attacker who took over that node: every call for
another node, or beyond what the admin enrolled, is refused (403) and changes nothing; a
revoked credential is 401; an L7 node gets only the keys of the load balancers placed on it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import (  # noqa: F401  (fixtures)
    admin,
    alice,
    client,
    database_url,
    postgres_server,
    settings,
)
from tests.api.helpers import Api, Fleet
from tests.pki import Pki

PKI = Pki()


class Tier:
    """Two L4 nodes and one L7 node per cluster (a, b), registered by their own agents,
    and a load balancer of each kind."""

    def __init__(self, operator: Api, tenant: Api) -> None:
        self.admin, self.alice, self.fleet = operator, tenant, Fleet(operator)
        self.nodes: dict[str, dict[str, Any]] = {}
        for name in ("l4a", "l4b"):
            self.register(name, "l4", address=f"192.0.2.{len(self.nodes) + 1}")
        for cluster in ("a", "b", "c"):
            self.register(
                f"l7{cluster}", "l7", cluster=cluster, data_address=f"10.9.0.{ord(cluster)}"
            )
        cert = tenant.ok(
            "POST", "/v2/shoal/certificates", {"certificate": PKI.upload(PKI.leaf("shop.example"))}
        )["certificate"]
        self.l7lb = tenant.lb(name="web")
        self.settle()
        tenant.listener(
            self.l7lb["id"], 443, "TERMINATED_HTTPS", default_tls_container_ref=cert["id"]
        )
        self.cert_id = cert["id"]
        self.settle()
        lb = tenant.lb(flavor_id="l4")
        self.settle()
        listener = tenant.listener(lb["id"])
        self.settle()
        pool = tenant.pool(listener["id"])
        self.settle()
        members = []
        for i in (1, 2):
            members.append(tenant.member(pool["id"], f"10.1.0.{i}"))
            self.settle()
        tenant.monitor(pool["id"])
        self.settle()
        self.l4 = {"lb": lb, "pool": pool, "members": members}
        placed = tenant.ok("GET", f"/v2/shoal/loadbalancers/{self.l7lb['id']}/nodes")["nodes"]
        self.placed = {n["name"] for n in placed if n.get("placement")}
        self.unplaced = next(n for n in ("l7a", "l7b", "l7c") if n not in self.placed)

    def register(self, name: str, role: str, **fields: Any) -> None:
        body = {"name": name, "role": role, **fields}
        self.nodes[name] = self.fleet.ok("POST", "/v2/shoal/nodes", body, expect=201)["node"]

    def api(self, name: str) -> Api:
        return self.fleet.by_name[name]

    def settle(self) -> None:
        for node in self.nodes.values():
            seq = self.fleet.ok("GET", f"/v2/shoal/nodes/{node['id']}/desired-state")["seq"]
            self.fleet.ok("POST", f"/v2/shoal/nodes/{node['id']}/report", {"seq": seq})

    def snapshot(self) -> Any:
        """Everything an attack could change: nodes, load balancers, members, events."""
        nodes = self.admin.ok("GET", "/v2/shoal/nodes")["nodes"]
        for n in nodes:
            n.pop("last_seen")
            n.pop("operating_status")
        lbs = self.admin.ok("GET", "/v2/lbaas/loadbalancers")["loadbalancers"]
        members = self.admin.ok("GET", f"/v2/lbaas/pools/{self.l4['pool']['id']}/members")
        events = self.admin.ok("GET", "/v2/shoal/events")["events"]
        return nodes, lbs, members, [e["id"] for e in events]


@pytest.fixture
def tier(admin: Api, alice: Api) -> Tier:  # noqa: F811
    return Tier(admin, alice)


def node_path(tier: Tier, name: str, what: str = "") -> str:
    return f"/v2/shoal/nodes/{tier.nodes[name]['id']}{what}"


def attacks(tier: Tier) -> list[tuple[str, str, str, Any]]:
    """(what, method, path, body) an L4 node's credential must not do."""
    lb, member = tier.l7lb["id"], tier.l4["members"][0]["id"]
    l4b, l7 = tier.nodes["l4b"], tier.nodes[next(iter(tier.placed))]
    error = {"load_balancer_id": lb, "revision": 1, "reason": "forged"}
    return [
        ("register another node", "POST", "/v2/shoal/nodes", {"name": "l4b", "role": "l4"}),
        ("register a new node", "POST", "/v2/shoal/nodes", {"name": "rogue", "role": "l4"}),
        ("become an L7 node", "POST", "/v2/shoal/nodes", {"name": "l4a", "role": "l7"}),
        (
            "attract L7 traffic",
            "POST",
            "/v2/shoal/nodes",
            {"name": "l4a", "role": "l4", "data_address": "203.0.113.66"},
        ),
        (
            "move its address",
            "POST",
            "/v2/shoal/nodes",
            {"name": "l4a", "role": "l4", "address": "203.0.113.66"},
        ),
        (
            "change cluster",
            "POST",
            "/v2/shoal/nodes",
            {"name": "l4a", "role": "l4", "cluster": "other"},
        ),
        ("read an L7 node's keys", "GET", node_path(tier, l7["name"], "/desired-state"), None),
        ("read another node's state", "GET", f"/v2/shoal/nodes/{l4b['id']}/desired-state", None),
        (
            "report another node's LBs ACTIVE",
            "POST",
            f"/v2/shoal/nodes/{l4b['id']}/report",
            {"seq": 2**40},
        ),
        (
            "report another node's LBs ERROR",
            "POST",
            f"/v2/shoal/nodes/{l7['id']}/report",
            {"seq": 0, "errors": [error]},
        ),
        (
            "health for another node",
            "POST",
            f"/v2/shoal/nodes/{l4b['id']}/health",
            {"results": [{"member_id": member, "ok": False}]},
        ),
        (
            "decide a member's health",
            "POST",
            node_path(tier, "l4a", "/health"),
            {"results": [{"member_id": member, "ok": False, "decided": True}]},
        ),
        (
            "health of an L4 node",
            "POST",
            node_path(tier, "l4a", "/health"),
            {"results": [{"node_id": l4b["id"], "ok": False}]},
        ),
        (
            "events for another node",
            "POST",
            f"/v2/shoal/nodes/{l4b['id']}/events",
            {"events": [{"kind": "forged", "load_balancer_id": lb}]},
        ),
        ("drain another node", "PUT", f"/v2/shoal/nodes/{l4b['id']}", {"admin_state": "DRAINING"}),
        ("delete another node", "DELETE", f"/v2/shoal/nodes/{l4b['id']}", None),
        ("list the nodes", "GET", "/v2/shoal/nodes", None),
        (
            "enrol a node",
            "POST",
            "/v2/shoal/enrollments",
            {"enrollment": {"name": "rogue", "role": "l7", "data_address": "203.0.113.66"}},
        ),
        ("rotate another credential", "POST", "/v2/shoal/enrollments/l4b/rotate", None),
        (
            "make an API token",
            "POST",
            "/v2/shoal/tokens",
            {"token": {"name": "x", "project_id": "alpha", "role": "admin"}},
        ),
    ]


def test_an_l4_nodes_credential_acts_for_its_own_node_only(tier: Tier) -> None:
    attacker = tier.api("l4a")
    before = tier.snapshot()
    for what, method, path, body in attacks(tier):
        r = attacker.request(method, path, body)
        assert r.status_code == 403, f"{what}: {r.status_code} {r.text}"
        assert r.json()["faultstring"], what
    assert tier.snapshot() == before
    # Its own calls still work.
    own = attacker.ok("POST", "/v2/shoal/nodes", {"name": "l4a", "role": "l4"}, expect=201)
    assert own["node"]["id"] == tier.nodes["l4a"]["id"]
    assert own["node"]["address"] == "192.0.2.1"  # the enrolled one, filled in


def test_an_l4_node_cannot_take_over_health_checks_or_report_l7_members(tier: Tier) -> None:
    """A pool's checks are one L4 node's duty: the other's results for it change nothing."""
    pool = tier.l4["pool"]["id"]
    duty = {
        name: tier.fleet.ok("GET", node_path(tier, name, "/desired-state"))["load_balancers"]
        for name in ("l4a", "l4b")
    }
    idle = next(
        name for name, lbs in duty.items() if not any(pool in x["health_checks"] for x in lbs)
    )
    member = tier.l4["members"][0]
    for _ in range(5):
        r = tier.api(idle).request(
            "POST",
            node_path(tier, idle, "/health"),
            {"results": [{"member_id": member["id"], "ok": False}]},
        )
        assert r.status_code == 204
    got = tier.alice.ok("GET", f"/v2/lbaas/pools/{pool}/members/{member['id']}")["member"]
    assert got["operating_status"] != "ERROR"


def test_an_l7_node_gets_only_its_placed_keys_and_reports_only_them(tier: Tier) -> None:
    for name in ("l7a", "l7b", "l7c"):
        state = tier.fleet.ok("GET", node_path(tier, name, "/desired-state"))
        if name in tier.placed:
            assert "PRIVATE KEY" in state["certificates"][tier.cert_id]
        else:
            assert state["certificates"] == {}
    placed = next(iter(tier.placed))
    outsider = tier.api(tier.unplaced)
    before = tier.snapshot()
    lb = tier.l7lb["id"]
    refused = [
        ("GET", node_path(tier, placed, "/desired-state"), None),
        (
            "POST",
            node_path(tier, tier.unplaced, "/report"),
            {"seq": 0, "errors": [{"load_balancer_id": lb, "revision": 2, "reason": "forged"}]},
        ),
        (
            "POST",
            node_path(tier, tier.unplaced, "/events"),
            {"events": [{"kind": "forged", "severity": "error", "load_balancer_id": lb}]},
        ),
        (
            "POST",
            node_path(tier, tier.unplaced, "/health"),
            {"results": [{"member_id": tier.l4["members"][0]["id"], "ok": False, "decided": True}]},
        ),
        (
            "POST",
            node_path(tier, tier.unplaced, "/health"),
            {"results": [{"node_id": tier.nodes[placed]["id"], "ok": False}]},
        ),
        ("POST", "/v2/shoal/nodes", {"name": tier.unplaced, "role": "l7", "cluster": "elsewhere"}),
    ]
    for method, path, body in refused:
        r = outsider.request(method, path, body)
        assert r.status_code == 403, f"{method} {path}: {r.status_code} {r.text}"
    assert tier.snapshot() == before


def test_revoked_and_rotated_credentials_stop_working(tier: Tier) -> None:
    node = tier.nodes["l4b"]
    old = tier.api("l4b")
    tier.admin.ok("DELETE", "/v2/shoal/enrollments/l4b")
    r = old.request("GET", node_path(tier, "l4b", "/desired-state"))
    assert r.status_code == 401 and "revoked" in r.json()["faultstring"]
    assert old.request("POST", "/v2/shoal/nodes", {"name": "l4b", "role": "l4"}).status_code == 401
    # l4a: rotated without grace, the old credential is gone at once.
    new = tier.admin.ok("POST", "/v2/shoal/enrollments/l4a/rotate")["enrollment"]["credential"]
    assert (
        tier.api("l4a").request("GET", node_path(tier, "l4a", "/desired-state")).status_code == 401
    )
    fresh = tier.admin.with_token(new)
    assert fresh.request("GET", node_path(tier, "l4a", "/desired-state")).status_code == 200
    assert node["id"] != tier.nodes["l4a"]["id"]


def test_the_shared_agent_token_is_gone(admin: Api, client: Any) -> None:  # noqa: F811
    r = admin.request(
        "POST", "/v2/shoal/tokens", {"token": {"name": "a", "project_id": "infra", "role": "agent"}}
    )
    assert r.status_code == 400
    from shoal.controller.auth import secret_hash
    from shoal.controller.db.models import Token

    with client.app.state.shoal.db.write() as session:  # one left by an older release
        session.add(
            Token(name="old", project_id="infra", role="agent", secret_hash=secret_hash("s"))
        )
    r = admin.with_token("s").request("POST", "/v2/shoal/nodes", {"name": "x", "role": "l4"})
    assert r.status_code == 401 and "enrol" in r.json()["faultstring"]
