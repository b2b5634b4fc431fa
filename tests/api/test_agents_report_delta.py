"""Delta reports (shoal.wire.report.NodeReport.base): the handshake that keeps them exact
(a base the controller does not hold is a readable 409, a whole report is always accepted),
what a delta changes (only the load balancers it names) and what a node may not do with one
(no looser than a whole report: its own rows only, only what it serves)."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import Api, Fleet


def register(agent: Fleet, name: str = "l4-a", role: str = "l4") -> dict[str, Any]:
    return agent.ok("POST", "/v2/shoal/nodes", {"name": name, "role": role}, expect=201)["node"]


def post(agent: Fleet, node_id: str, **body: Any) -> Any:
    return agent.request("POST", f"/v2/shoal/nodes/{node_id}/report", {"seq": 0, **body})


def seq_of(agent: Fleet, node_id: str) -> int:
    return int(agent.ok("GET", f"/v2/shoal/nodes/{node_id}/feed", position=0)["seq"])


def digests_of(alice: Api, lb_id: str) -> dict[str, Any]:
    view = alice.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/nodes")
    return {n["name"]: n["table_digests"] for n in view["nodes"]}


def error(lb_id: str, revision: int = 1, reason: str = "data plane full") -> dict[str, Any]:
    return {"load_balancer_id": lb_id, "revision": revision, "reason": reason}


def test_a_delta_changes_only_the_load_balancers_it_names(alice: Api, agent: Fleet) -> None:
    node = register(agent)
    one, two = alice.lb(flavor_id="l4"), alice.lb(flavor_id="l4")
    seq = seq_of(agent, node["id"])
    d1, d2 = {"tcp://a:80": "d1"}, {"tcp://b:80": "d2"}
    whole = {"seq": seq, "report": 10, "digests": {two["id"]: d2}, "errors": [error(one["id"])]}
    assert post(agent, node["id"], **whole).status_code == 204
    assert alice.get_lb(one["id"])["provisioning_status"] == "ERROR"
    assert alice.get_lb(two["id"])["provisioning_status"] == "ACTIVE"
    # Only two changed: one's error row and (absent) digest stay as they were.
    delta = {"seq": seq, "report": 11, "base": 10, "digests": {two["id"]: d1}}
    assert post(agent, node["id"], **delta).status_code == 204
    assert digests_of(alice, two["id"]) == {"l4-a": d1}
    assert alice.get_lb(one["id"])["provisioning_status"] == "ERROR"
    # one applied after all: its error goes, its digest arrives, it recovers.
    delta = {"seq": seq, "report": 12, "base": 11, "digests": {one["id"]: d2}}
    assert post(agent, node["id"], **delta).status_code == 204
    assert alice.get_lb(one["id"])["provisioning_status"] == "ACTIVE"
    assert digests_of(alice, one["id"]) == {"l4-a": d2}
    # removed: neither digest nor error any more.
    delta = {"seq": seq, "report": 13, "base": 12, "removed": [two["id"]]}
    assert post(agent, node["id"], **delta).status_code == 204
    assert digests_of(alice, two["id"]) == {"l4-a": {}}
    assert digests_of(alice, one["id"]) == {"l4-a": d2}


def test_a_stale_base_is_a_readable_409_and_a_whole_report_is_accepted(
    alice: Api, agent: Fleet
) -> None:
    node = register(agent)
    lb = alice.lb(flavor_id="l4")
    seq = seq_of(agent, node["id"])
    assert post(agent, node["id"], seq=seq, report=1).status_code == 204
    assert post(agent, node["id"], seq=seq, report=2, base=1).status_code == 204
    # The report numbered 2 was stored, so a delta against 1 (its answer lost) is refused.
    late = post(agent, node["id"], seq=seq, report=3, base=1, digests={lb["id"]: {"x": "y"}})
    assert late.status_code == 409
    assert "send a whole report" in late.json()["faultstring"]
    assert digests_of(alice, lb["id"]) == {"l4-a": {}}  # nothing of it stored
    # An agent that does not number its reports (before delta reports): whole, accepted;
    # then no base matches until a numbered whole report.
    assert post(agent, node["id"], seq=seq, digests={lb["id"]: {"x": "old"}}).status_code == 204
    assert digests_of(alice, lb["id"]) == {"l4-a": {"x": "old"}}
    assert post(agent, node["id"], seq=seq, report=4, base=2).status_code == 409
    assert post(agent, node["id"], seq=seq, report=5).status_code == 204
    assert post(agent, node["id"], seq=seq, report=6, base=5).status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        {"base": 1},  # a delta without its own number
        {"report": 2, "removed": ["x"]},  # removed in a whole report
        {"report": 2, "base": 1, "errors": [error("a"), error("a", 2)]},  # twice the same LB
        {"report": 2, "base": 1, "removed": ["x" * 37]},
        {"report": -1},
        {"report": 1, "base": "1"},
        {"report": 2, "base": 1, "digests": {"x" * 37: {}}},  # not a load balancer id
    ],
)
def test_malformed_delta_reports_are_a_readable_4xx(agent: Fleet, body: dict[str, Any]) -> None:
    node = register(agent)
    assert post(agent, node["id"], report=1).status_code == 204
    r = post(agent, node["id"], **body)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["faultstring"]


def test_a_delta_is_no_looser_than_a_whole_report(alice: Api, agent: Fleet) -> None:
    """A node writes only its own rows, of what it serves, whatever base it names."""
    a, b = register(agent, "l4-a"), register(agent, "l4-b")
    lb = alice.lb(flavor_id="l4")
    seq = seq_of(agent, a["id"])
    assert post(agent, a["id"], seq=seq, report=1, errors=[error(lb["id"])]).status_code == 204
    assert post(agent, b["id"], seq=seq, report=1).status_code == 204
    assert alice.get_lb(lb["id"])["provisioning_status"] == "ERROR"
    # b's credential on a's report, with a's base: refused.
    r = agent.by_id[b["id"]].request(
        "POST", f"/v2/shoal/nodes/{a['id']}/report", {"seq": seq, "report": 2, "base": 1}
    )
    assert r.status_code == 403
    # b "removes" the load balancer: b's rows only; a's error stands.
    assert post(agent, b["id"], seq=seq, report=2, base=1, removed=[lb["id"]]).status_code == 204
    assert alice.get_lb(lb["id"])["provisioning_status"] == "ERROR"
    # An L7 node may not report on a load balancer not placed on it, in a delta either, and
    # the refused delta leaves its base where it was.
    l7 = register(agent, "l7-a", "l7")
    assert post(agent, l7["id"], seq=seq, report=1).status_code == 204
    r = post(agent, l7["id"], seq=seq, report=2, base=1, errors=[error(lb["id"])])
    assert r.status_code == 403 and "does not serve" in r.json()["faultstring"]
    assert post(agent, l7["id"], seq=seq, report=3, base=1).status_code == 204
    # Nor write digest rows for it, whole or delta.
    for body in ({"report": 4, "base": 3}, {"report": 4}):
        r = post(agent, l7["id"], seq=seq, digests={lb["id"]: {"x": "y"}}, **body)
        assert r.status_code == 403 and "does not serve" in r.json()["faultstring"]
    assert digests_of(alice, lb["id"]) == {"l4-a": {}, "l4-b": {}}


def test_a_node_writes_only_its_own_digest_rows(admin: Api, alice: Api, agent: Fleet) -> None:
    """Digests are rows per (node, load balancer): whatever b reports, whole or delta,
    a's rows stay as a reported them."""
    a, b = register(agent, "l4-a"), register(agent, "l4-b")
    lb, other = alice.lb(flavor_id="l4"), alice.lb(flavor_id="l4")
    seq = seq_of(agent, a["id"])
    mine = {"tcp://a:80": "a"}
    assert post(agent, a["id"], seq=seq, report=1, digests={lb["id"]: mine}).status_code == 204
    assert (
        post(agent, b["id"], seq=seq, report=1, digests={lb["id"]: {"t": "b"}}).status_code == 204
    )
    # b: a whole report without lb, then a delta removing it, then one rewriting it.
    assert post(agent, b["id"], seq=seq, report=2, digests={other["id"]: {}}).status_code == 204
    assert post(agent, b["id"], seq=seq, report=3, base=2, removed=[lb["id"]]).status_code == 204
    r = post(agent, b["id"], seq=seq, report=4, base=3, digests={lb["id"]: {"t": "evil"}})
    assert r.status_code == 204
    assert digests_of(alice, lb["id"]) == {"l4-a": mine, "l4-b": {"t": "evil"}}
    # b's credential on a's path is refused before anything is written.
    r = agent.by_id[b["id"]].request(
        "POST", f"/v2/shoal/nodes/{a['id']}/report", {"seq": seq, "digests": {lb["id"]: {}}}
    )
    assert r.status_code == 403
    assert digests_of(alice, lb["id"])["l4-a"] == mine
    # The node views carry each node's own rows.
    views = {n["name"]: n for n in admin.ok("GET", "/v2/shoal/nodes")["nodes"]}
    assert views["l4-a"]["digests"] == {lb["id"]: mine}
    assert views["l4-b"]["digests"] == {lb["id"]: {"t": "evil"}, other["id"]: {}}
