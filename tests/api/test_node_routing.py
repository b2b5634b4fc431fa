"""An L4 node's BGP/BFD state, as its agent reports it through the typed report
(shoal.wire.report): stored with the node's report, shown in the node view to admins and
global observers only, bounded, and refused in one readable line when malformed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shoal.controller.app import create_app
from shoal.wire.report import MAX_PEERS

from .conftest import make_settings
from .helpers import ADMIN_SECRET, Api, Fleet

PEER = {
    "name": "uplink",
    "neighbor": "10.88.0.1",
    "bgp_state": "Established",
    "bgp_since": "12:01:03.456",
    "bfd_state": "Up",
    "bfd_since": "12:01:03.500",
}


def routing(**extra: object) -> dict[str, object]:
    return {"bird": "ok", "peers": [PEER], "announced": 3, **extra}


def register_and_report(agent: Fleet, body: dict[str, object]) -> tuple[str, int]:
    node = agent.ok("POST", "/v2/shoal/nodes", {"name": "l4-a", "role": "l4"}, expect=201)["node"]
    r = agent.request("POST", f"/v2/shoal/nodes/{node['id']}/report", {"seq": 0, **body})
    return node["id"], r.status_code


def test_the_node_view_shows_the_reported_sessions(admin: Api, agent: Fleet) -> None:
    node_id, code = register_and_report(agent, {"routing": routing()})
    assert code == 204
    view = admin.ok("GET", f"/v2/shoal/nodes/{node_id}")["node"]
    assert view["routing"]["bird"] == "ok" and view["routing"]["announced"] == 3
    assert view["routing"]["peers"] == [PEER]
    listed = admin.ok("GET", "/v2/shoal/nodes")["nodes"]
    assert listed[0]["routing"]["peers"][0]["bgp_state"] == "Established"


def test_a_later_report_replaces_the_state_and_unknown_is_kept(admin: Api, agent: Fleet) -> None:
    node_id, _ = register_and_report(agent, {"routing": routing()})
    broken = {"bird": "unknown", "error": "birdc show protocols all: no such socket"}
    agent.ok("POST", f"/v2/shoal/nodes/{node_id}/report", {"seq": 0, "routing": broken})
    view = admin.ok("GET", f"/v2/shoal/nodes/{node_id}")["node"]["routing"]
    assert view["bird"] == "unknown" and view["peers"] == [] and "no such socket" in view["error"]


def test_counters_cannot_forge_the_routing_state(admin: Api, agent: Fleet) -> None:
    """The routing state comes only from the typed field, never from free-form counters."""
    forged = {"routing": {"bird": "ok", "peers": [{"name": "<script>"}]}}
    node_id, code = register_and_report(agent, {"counters": forged})
    assert code == 204
    assert admin.ok("GET", f"/v2/shoal/nodes/{node_id}")["node"]["routing"] is None


@pytest.mark.parametrize(
    "bad, word",
    [
        (routing(peers=[PEER] * (MAX_PEERS + 1)), "peers"),
        (routing(peers=[{**PEER, "name": "x" * 65}]), "name"),
        (routing(bird="great"), "bird"),
        (routing(announced=-1), "announced"),
        (routing(extra="field"), "extra"),
    ],
)
def test_a_malformed_routing_state_is_a_readable_400(
    agent: Fleet, bad: dict[str, object], word: str
) -> None:
    node = agent.ok("POST", "/v2/shoal/nodes", {"name": "l4-a", "role": "l4"}, expect=201)["node"]
    r = agent.request("POST", f"/v2/shoal/nodes/{node['id']}/report", {"seq": 0, "routing": bad})
    assert 400 <= r.status_code < 500
    line = r.json()["faultstring"]
    assert word in line and "\n" not in line and "Traceback" not in r.text


def test_members_and_readers_do_not_see_nodes(admin: Api) -> None:
    for role in ("member", "reader"):
        user = admin.with_token(admin.token(f"u-{role}", "alpha", role))
        assert user.request("GET", "/v2/shoal/nodes").status_code == 403


@pytest.fixture
def noauth(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """Loopback noauth: roles from X-Roles, as a Keystone-fronted deployment passes them."""
    settings = make_settings(database_url, tmp_path, auth="noauth")
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        yield c


def test_a_global_observer_reads_nodes_and_a_project_reader_does_not(noauth: TestClient) -> None:
    admin = Api(noauth, ADMIN_SECRET)
    agent = Fleet(admin)
    node_id, _ = register_and_report(agent, {"routing": routing()})
    observer = {"X-Project-Id": "alpha", "X-Roles": "load-balancer_global_observer"}
    r = noauth.get(f"/v2/shoal/nodes/{node_id}", headers=observer)
    assert r.status_code == 200 and r.json()["node"]["routing"]["peers"][0]["bfd_state"] == "Up"
    reader = {"X-Project-Id": "alpha", "X-Roles": "load-balancer_observer"}
    assert noauth.get("/v2/shoal/nodes", headers=reader).status_code == 403
    assert noauth.put(f"/v2/shoal/nodes/{node_id}", json={}, headers=observer).status_code == 403
