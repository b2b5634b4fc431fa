"""The agents' side: registration, long-poll, reports, and the status they drive. Nothing
stays PENDING: a node's failure or silence turns into ERROR with a reason, and recovery works."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shoal.controller.app import create_app

from .conftest import make_settings
from .helpers import ADMIN_SECRET, Api, Fleet


def register(agent: Fleet, name: str = "l4-a", role: str = "l4") -> dict:
    return agent.ok("POST", "/v2/shoal/nodes", {"name": name, "role": role}, expect=201)["node"]


def state(agent: Fleet, node_id: str, **params: object) -> dict:
    return agent.ok("GET", f"/v2/shoal/nodes/{node_id}/desired-state", **params)


def report(agent: Fleet, node_id: str, seq: int, errors: list | None = None) -> None:
    agent.ok("POST", f"/v2/shoal/nodes/{node_id}/report", {"seq": seq, "errors": errors or []})


def test_writes_are_pending_until_every_node_applied_them(alice: Api, agent: Fleet) -> None:
    node = register(agent)
    lb = alice.lb(flavor_id="l4")
    assert lb["provisioning_status"] == "PENDING_CREATE"
    r = alice.request("PUT", f"/v2/lbaas/loadbalancers/{lb['id']}", {"loadbalancer": {"name": "x"}})
    assert r.status_code == 409 and "PENDING_CREATE" in r.json()["faultstring"]
    desired = state(agent, node["id"])
    (entry,) = desired["load_balancers"]
    assert entry["id"] == lb["id"] and entry["revision"] == 1
    assert entry["config"]["vip_address"] == lb["vip_address"]
    assert desired["settings"]["seed"]
    report(agent, node["id"], desired["seq"])
    assert alice.get_lb(lb["id"])["provisioning_status"] == "ACTIVE"
    # A second node joins: the next write waits for both.
    second = register(agent, "l4-b")
    alice.ok("PUT", f"/v2/lbaas/loadbalancers/{lb['id']}", {"loadbalancer": {"name": "y"}})
    seq = state(agent, node["id"])["seq"]
    report(agent, node["id"], seq)
    assert alice.get_lb(lb["id"])["provisioning_status"] == "PENDING_UPDATE"
    report(agent, second["id"], seq)
    assert alice.get_lb(lb["id"])["provisioning_status"] == "ACTIVE"


def test_a_node_failure_is_error_with_its_reason_and_recovers(alice: Api, agent: Fleet) -> None:
    node = register(agent)
    lb = alice.lb(flavor_id="l4")
    seq = state(agent, node["id"])["seq"]
    report(
        agent,
        node["id"],
        seq,
        [{"load_balancer_id": lb["id"], "revision": 1, "reason": "XDP attach failed: EBUSY"}],
    )
    got = alice.get_lb(lb["id"])
    assert got["provisioning_status"] == "ERROR"
    st = alice.ok("GET", f"/v2/lbaas/loadbalancers/{lb['id']}/status")["statuses"]
    assert "l4-a: XDP attach failed: EBUSY" in st["loadbalancer"]["provisioning_reason"]
    events = alice.ok("GET", "/v2/shoal/events", load_balancer_id=lb["id"])["events"]
    assert any("EBUSY" in e["message"] for e in events)
    # The agent retries and succeeds: same revision, no error this time.
    report(agent, node["id"], seq)
    assert alice.get_lb(lb["id"])["provisioning_status"] == "ACTIVE"
    # A write while in ERROR is allowed (that is how one fixes or rolls back).
    report(
        agent, node["id"], seq, [{"load_balancer_id": lb["id"], "revision": 1, "reason": "boom"}]
    )
    alice.ok("PUT", f"/v2/lbaas/loadbalancers/{lb['id']}", {"loadbalancer": {"name": "fix"}})
    assert alice.get_lb(lb["id"])["provisioning_status"] == "PENDING_UPDATE"
    report(agent, node["id"], state(agent, node["id"])["seq"])
    assert alice.get_lb(lb["id"])["provisioning_status"] == "ACTIVE"


def test_a_silent_node_makes_error_after_the_timeout(database_url, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, pending_timeout=1.0)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        admin = Api(client, ADMIN_SECRET)
        agent = Fleet(admin)
        register(agent)
        lb = admin.lb(flavor_id="l4")
        deadline = time.monotonic() + 10
        while admin.get_lb(lb["id"])["provisioning_status"] == "PENDING_CREATE":
            assert time.monotonic() < deadline, "stuck in PENDING_CREATE"
            time.sleep(0.2)
        st = admin.ok("GET", f"/v2/lbaas/loadbalancers/{lb['id']}/status")["statuses"]
        assert st["loadbalancer"]["provisioning_status"] == "ERROR"
        assert "did not apply revision 1 within 1 s" in st["loadbalancer"]["provisioning_reason"]


def test_dead_nodes_do_not_hold_load_balancers(database_url, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, node_dead_after=1.0)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        admin = Api(client, ADMIN_SECRET)
        agent = Fleet(admin)
        register(agent)
        time.sleep(1.5)  # the node goes silent
        assert admin.lb(flavor_id="l4")["provisioning_status"] == "ACTIVE"
        nodes = admin.ok("GET", "/v2/shoal/nodes")["nodes"]
        assert nodes[0]["operating_status"] == "OFFLINE"


@pytest.mark.parametrize("delta", [False, True], ids=["whole", "delta"])
def test_two_nodes_reporting_at_once_settle_the_change_themselves(
    database_url: str, tmp_path: Path, delta: bool
) -> None:
    """The second of two concurrent reports sees the first's applied position and makes the
    load balancer ACTIVE itself: no background tick runs here (no lifespan), so nothing
    else could. On PostgreSQL only: SQLite serialises writers at BEGIN. A delta report
    looks only at what it reached, which must still take the same lock."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite writers never overlap")
    from shoal.controller.db.models import Node
    from shoal.controller.services import status

    app = create_app(make_settings(database_url, tmp_path))
    admin = Api(TestClient(app, base_url="https://testserver"), ADMIN_SECRET)
    agent = Fleet(admin)
    a, b = register(agent, "l4-a"), register(agent, "l4-b")
    lb = admin.lb(flavor_id="l4")
    seq = state(agent, a["id"])["seq"]
    shoal = app.state.shoal
    first_refreshed, commit_first = threading.Event(), threading.Event()

    def applied(node_id: str, hold: bool) -> None:
        with shoal.db.write() as session:
            node = session.get(Node, node_id)
            before, node.applied_seq = node.applied_seq, seq
            session.flush()
            status.refresh_pending(session, shoal.settings, (before, seq) if delta else None)
            if hold:  # still uncommitted while the other node reports
                first_refreshed.set()
                commit_first.wait(10)

    first = threading.Thread(target=applied, args=(a["id"], True))
    first.start()
    assert first_refreshed.wait(10)
    second = threading.Thread(target=applied, args=(b["id"], False))
    second.start()
    second.join(1.0)  # waits for the first's commit (the lock), or is done without it
    commit_first.set()
    first.join(10)
    second.join(10)
    assert admin.get_lb(lb["id"])["provisioning_status"] == "ACTIVE"


def test_long_poll_answers_at_once_on_change_and_waits_otherwise(alice: Api, agent: Fleet) -> None:
    node = register(agent)
    seq = state(agent, node["id"])["seq"]
    t0 = time.monotonic()
    idle = state(agent, node["id"], since=seq, timeout=0.5)
    assert idle == {"seq": seq, "changed": False}
    assert time.monotonic() - t0 >= 0.45
    answers: list[dict] = []

    def poll() -> None:
        """Follows the feed as an agent does, until a load balancer arrives: the write
        may record more than one change, and the first answer may be about another."""
        since = seq
        while len(answers) < 10:
            body = state(agent, node["id"], since=since, timeout=120)
            answers.append(body)
            if body.get("changed") is False or body.get("load_balancers"):
                return
            since = body["seq"]

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    time.sleep(0.3)
    lb = alice.lb(flavor_id="l4")
    # Answered on the change, not at its 120 s timeout (60 s: any machine's time for one
    # write; a fixed few seconds failed under load).
    thread.join(60)
    assert not thread.is_alive() and answers
    # Every answer came on a change (a wait ending without one says changed: False), and
    # the last carries the new load balancer.
    assert all(a.get("changed") is not False and a["seq"] > seq for a in answers), answers
    assert [x["id"] for x in answers[-1]["load_balancers"]] == [lb["id"]]


def test_member_health_is_decided_here(alice: Api, agent: Fleet) -> None:
    stack = alice.l4_stack(members=2)
    node = register(agent)
    alice.monitor(stack["pool"]["id"], max_retries=2, max_retries_down=3)
    desired = state(agent, node["id"])
    (entry,) = desired["load_balancers"]
    assert entry["health_checks"] == [stack["pool"]["id"]]  # the only node checks the pool
    report(agent, node["id"], desired["seq"])
    sick, fine = stack["members"]

    def results(ok_sick: bool) -> None:
        agent.ok(
            "POST",
            f"/v2/shoal/nodes/{node['id']}/health",
            {
                "results": [
                    {
                        "member_id": sick["id"],
                        "ok": ok_sick,
                        "detail": "" if ok_sick else "refused",
                    },
                    {"member_id": fine["id"], "ok": True},
                ]
            },
        )

    def op(member: dict) -> str:
        return alice.ok("GET", f"/v2/lbaas/pools/{stack['pool']['id']}/members/{member['id']}")[
            "member"
        ]["operating_status"]

    results(True)
    results(True)
    assert op(sick) == "ONLINE" and op(fine) == "ONLINE"
    before = state(agent, node["id"])["seq"]
    results(False)
    results(False)
    assert op(sick) == "ONLINE"  # two failures: not yet (max_retries_down=3)
    results(False)
    assert op(sick) == "ERROR"
    after = state(agent, node["id"])
    assert after["seq"] > before  # published to every node
    assert after["load_balancers"][0]["member_health"][sick["id"]] == "DOWN"
    assert alice.get_lb(stack["lb"]["id"])["operating_status"] == "DEGRADED"
    assert alice.get_lb(stack["lb"]["id"])["provisioning_status"] == "ACTIVE"  # not a revision
    results(True)
    assert op(sick) == "ERROR"
    results(True)
    assert op(sick) == "ONLINE"
    kinds = [
        e["kind"]
        for e in alice.ok("GET", "/v2/shoal/events", load_balancer_id=stack["lb"]["id"])["events"]
    ]
    assert kinds.count("member_down") == 1 and "member_up" in kinds


def test_node_drain_events_and_clusters(admin: Api, agent: Fleet) -> None:
    node = register(agent)
    register(agent, "l7-a", "l7")
    drained = admin.ok("PUT", f"/v2/shoal/nodes/{node['id']}", {"admin_state": "DRAINING"})["node"]
    assert drained["admin_state"] == "DRAINING"
    assert state(agent, node["id"])["node"]["admin_state"] == "DRAINING"
    agent.ok(
        "POST",
        f"/v2/shoal/nodes/{node['id']}/events",
        {"events": [{"kind": "flood_mode_entered", "severity": "warning", "message": "SYN flood"}]},
    )
    events = admin.ok("GET", "/v2/shoal/events", kind="flood_mode_entered")["events"]
    assert events[0]["node_id"] == node["id"]
    clusters = admin.ok("GET", "/v2/shoal/clusters")["clusters"]
    assert {(c["role"], c["nodes"]) for c in clusters} == {("l4", 1), ("l7", 1)}
    assert (
        agent.request("PUT", f"/v2/shoal/nodes/{node['id']}", {"admin_state": "ACTIVE"}).status_code
        == 403
    )


def test_flow_trace_matches_the_data_plane_rules(alice: Api) -> None:
    stack = alice.l4_stack(members=3)
    lb_id = stack["lb"]["id"]
    seen = set()
    for port in range(1000, 1060):
        trace = alice.ok(
            "POST",
            f"/v2/shoal/loadbalancers/{lb_id}/flow-trace",
            {"source_ip": "192.0.2.7", "source_port": port, "protocol_port": 80},
        )["flow_trace"]
        # 3 members: the smallest listed prime with 100 slots each (maglev.TABLE_SIZES)
        assert trace["verdict"] == "forward" and trace["table_size"] == 1021
        seen.add(trace["address"])
    assert seen == {"10.1.0.1", "10.1.0.2", "10.1.0.3"}
    r = alice.request(
        "POST",
        f"/v2/shoal/loadbalancers/{lb_id}/flow-trace",
        {"source_ip": "192.0.2.7", "source_port": 1, "protocol_port": 81},
    )
    assert r.status_code == 400 and "no TCP listener on port 81" in r.json()["faultstring"]


def test_desired_state_is_valid_json_for_many_lbs(alice: Api, agent: Fleet) -> None:
    for _ in range(5):
        alice.l4_stack(members=2)
    node = register(agent)
    r = agent.request("GET", f"/v2/shoal/nodes/{node['id']}/desired-state")
    doc = json.loads(r.text)
    assert len(doc["load_balancers"]) == 5
    assert all(len(x["config"]["pools"][0]["members"]) == 2 for x in doc["load_balancers"])


@pytest.mark.parametrize("role", ["member", "reader"])
def test_only_agents_use_the_agent_api(admin: Api, role: str) -> None:
    user = admin.with_token(admin.token("u", "alpha", role))
    assert user.request("POST", "/v2/shoal/nodes", {"name": "n", "role": "l4"}).status_code == 403


def test_table_digests_show_whether_nodes_agree(alice: Api, agent: Fleet) -> None:
    lb = alice.l4_stack(members=2)["lb"]
    a, b = register(agent, "l4-a"), register(agent, "l4-b")
    seq = state(agent, a["id"])["seq"]
    same = {lb["id"]: {"tcp://10.200.0.1:80": "d1"}}
    for node in (a, b):
        agent.ok("POST", f"/v2/shoal/nodes/{node['id']}/report", {"seq": seq, "digests": same})
    view = alice.ok("GET", f"/v2/shoal/loadbalancers/{lb['id']}/nodes")
    assert view["tables_agree"] is True and all(n["applied"] for n in view["nodes"])
    agent.ok(
        "POST",
        f"/v2/shoal/nodes/{b['id']}/report",
        {"seq": seq, "digests": {lb["id"]: {"tcp://10.200.0.1:80": "other"}}},
    )
    assert alice.ok("GET", f"/v2/shoal/loadbalancers/{lb['id']}/nodes")["tables_agree"] is False


def test_a_node_that_only_long_polls_stays_alive(database_url: str, tmp_path: Path) -> None:
    """The wait is cut to a third of node_dead_after, whatever the agent asks for: an agent
    with nothing else to say is never counted dead (its placements would flap)."""
    settings = make_settings(database_url, tmp_path / "short", node_dead_after=1.5)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        api = Fleet(Api(client, ADMIN_SECRET))
        node = register(api, "quiet-l7", "l7")
        seq = state(api, node["id"])["seq"]
        start = time.monotonic()
        while time.monotonic() - start < 4:  # past node_dead_after and the startup grace
            t = time.monotonic()
            assert state(api, node["id"], since=seq, timeout=30) == {"seq": seq, "changed": False}
            assert time.monotonic() - t < 10  # cut (to 0.5 s), not the 30 s asked for
        got = api.admin.ok("GET", f"/v2/shoal/nodes/{node['id']}")["node"]
        assert got["operating_status"] == "ONLINE"
