"""The agents' feed: a snapshot first, then only what changed, in order; snapshots again
when the position is unknown, compacted away, or a change concerns every load balancer;
long polls; and the attacker's side (another node's feed, bad positions)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from fastapi.testclient import TestClient

from shoal.controller.services import feed
from shoal.wire.feed import SCHEMA_VERSION, Feed

from .helpers import Api, Fleet


def register(agent: Fleet, name: str = "l4-a", role: str = "l4") -> str:
    body = {"name": name, "role": role}
    return str(agent.ok("POST", "/v2/shoal/nodes", body, expect=201)["node"]["id"])


def get_feed(agent: Fleet, node_id: str, position: int, **params: Any) -> dict[str, Any]:
    out: dict[str, Any] = agent.ok(
        "GET", f"/v2/shoal/nodes/{node_id}/feed", position=position, **params
    )
    Feed.model_validate(out)  # every answer is the typed contract
    return out


def report(agent: Fleet, node_id: str, seq: int) -> None:
    agent.ok("POST", f"/v2/shoal/nodes/{node_id}/report", {"seq": seq, "errors": []})


def catch_up(agent: Fleet, node_id: str, position: int) -> dict[str, Any]:
    answer = get_feed(agent, node_id, position)
    report(agent, node_id, answer["seq"])
    return answer


def test_a_member_change_sends_only_its_load_balancer(alice: Api, agent: Fleet) -> None:
    stacks = [alice.l4_stack(members=3) for _ in range(3)]  # ACTIVE at once: no node yet
    node = register(agent)
    snap = catch_up(agent, node, 0)
    assert snap["schema_version"] == SCHEMA_VERSION and snap["snapshot"] is True
    assert {lb["id"] for lb in snap["load_balancers"]} == {s["lb"]["id"] for s in stacks}
    target = stacks[1]
    member = target["members"][0]
    alice.ok(
        "PUT",
        f"/v2/lbaas/pools/{target['pool']['id']}/members/{member['id']}",
        {"member": {"weight": 0}},
    )
    delta = get_feed(agent, node, snap["seq"])
    assert delta["snapshot"] is False and delta["deleted"] == []
    (entry,) = delta["load_balancers"]
    assert entry["id"] == target["lb"]["id"]
    weights = {m["id"]: m["weight"] for m in entry["config"]["pools"][0]["members"]}
    assert weights[member["id"]] == 0
    assert entry["config"]["schema_version"] == SCHEMA_VERSION
    assert delta["seq"] > snap["seq"]
    # Nothing new: an empty delta at once without timeout...
    report(agent, node, delta["seq"])
    again = get_feed(agent, node, delta["seq"])
    assert again["load_balancers"] == [] and again["seq"] == delta["seq"]
    # ...and changed=false after a long poll.
    waited = get_feed(agent, node, delta["seq"], timeout=0.3)
    assert waited == {"schema_version": SCHEMA_VERSION, "seq": delta["seq"], "changed": False}


def test_deltas_come_in_order_with_tombstones(alice: Api, agent: Fleet) -> None:
    a, b = alice.l4_stack(members=1), alice.l4_stack(members=1)
    node = register(agent)
    snap = catch_up(agent, node, 0)
    alice.ok("PUT", f"/v2/lbaas/loadbalancers/{b['lb']['id']}", {"loadbalancer": {"name": "b"}})
    alice.ok("PUT", f"/v2/lbaas/loadbalancers/{a['lb']['id']}", {"loadbalancer": {"name": "a"}})
    delta = get_feed(agent, node, snap["seq"])
    assert [lb["id"] for lb in delta["load_balancers"]] == [b["lb"]["id"], a["lb"]["id"]]
    report(agent, node, delta["seq"])
    alice.ok("DELETE", f"/v2/lbaas/loadbalancers/{a['lb']['id']}?cascade=true")
    gone = get_feed(agent, node, delta["seq"])
    assert gone["load_balancers"] == [] and gone["deleted"] == [a["lb"]["id"]]
    report(agent, node, gone["seq"])
    assert alice.request("GET", f"/v2/lbaas/loadbalancers/{a['lb']['id']}").status_code == 404


def test_snapshots_when_unknown_compacted_or_for_every_load_balancer(
    client: TestClient, admin: Api, alice: Api, agent: Fleet
) -> None:
    stack = alice.l4_stack(members=1)
    node = register(agent)
    snap = catch_up(agent, node, 0)
    # A position the database never had (another database, restored from backup).
    assert get_feed(agent, node, snap["seq"] + 1000)["snapshot"] is True
    # A node drained: duties and announcements change for everyone.
    admin.ok("PUT", f"/v2/shoal/nodes/{node}", {"admin_state": "DRAINING"})
    drained = get_feed(agent, node, snap["seq"])
    assert drained["snapshot"] is True and drained["node"]["admin_state"] == "DRAINING"
    # Compacted away: the agent is older than the oldest change kept.
    alice.ok("PUT", f"/v2/lbaas/loadbalancers/{stack['lb']['id']}", {"loadbalancer": {"name": "x"}})
    db = client.app.state.shoal.db  # type: ignore[attr-defined]
    with db.write() as session:
        feed.compact(session, keep=1)
    assert get_feed(agent, node, drained["seq"] - 1)["snapshot"] is True


def test_a_batch_larger_than_feed_batch_comes_in_parts(
    client: TestClient, alice: Api, agent: Fleet
) -> None:
    client.app.state.shoal.settings.feed_batch = 2  # type: ignore[attr-defined]
    stacks = [alice.l4_stack(members=1) for _ in range(3)]
    node = register(agent)
    snap = catch_up(agent, node, 0)
    for s in stacks:
        alice.ok("PUT", f"/v2/lbaas/loadbalancers/{s['lb']['id']}", {"loadbalancer": {"name": "n"}})
    first = get_feed(agent, node, snap["seq"])
    assert first["more"] is True and len(first["load_balancers"]) == 2
    rest = get_feed(agent, node, first["seq"])
    assert rest["more"] is False and len(rest["load_balancers"]) == 1
    seen = [lb["id"] for lb in first["load_balancers"] + rest["load_balancers"]]
    assert seen == [s["lb"]["id"] for s in stacks]


def test_an_l7_node_gets_only_what_is_placed_on_it(alice: Api, agent: Fleet) -> None:
    l4_lb = alice.l4_stack(members=1)["lb"]
    l4 = register(agent)
    l7 = register(agent, "l7-a", "l7")
    for node in (l4, l7):
        report(agent, node, 0)
    l7_lb = alice.lb()  # placed on l7-a, the only L7 node
    answer = get_feed(agent, l7, 0)
    assert [lb["id"] for lb in answer["load_balancers"]] == [l7_lb["id"]]
    assert answer["load_balancers"][0]["placement"] == "ACTIVE"
    report(agent, l7, answer["seq"])
    alice.ok("PUT", f"/v2/lbaas/loadbalancers/{l4_lb['id']}", {"loadbalancer": {"name": "other"}})
    delta = get_feed(agent, l7, answer["seq"])
    # The L4 one is none of its business: not even its id.
    assert l4_lb["id"] not in json.dumps(delta)
    assert {lb["id"] for lb in delta["load_balancers"]} <= {l7_lb["id"]}


def test_the_long_poll_wakes_at_a_write(alice: Api, agent: Fleet) -> None:
    stack = alice.l4_stack(members=1)
    node = register(agent)
    snap = catch_up(agent, node, 0)
    got: dict[str, Any] = {}

    def poll() -> None:
        got.update(get_feed(agent, node, snap["seq"], timeout=20))

    t = threading.Thread(target=poll)
    started = time.monotonic()
    t.start()
    time.sleep(0.2)  # let it wait
    alice.ok("PUT", f"/v2/lbaas/loadbalancers/{stack['lb']['id']}", {"loadbalancer": {"name": "w"}})
    t.join(20)
    assert got["load_balancers"][0]["id"] == stack["lb"]["id"]
    assert time.monotonic() - started < 10  # woken, not timed out


def test_a_node_cannot_read_another_nodes_feed_nor_send_bad_positions(
    agent: Fleet, alice: Api
) -> None:
    a = register(agent, "l4-a")
    b = register(agent, "l4-b")
    as_a = agent.by_id[a]
    r = as_a.request("GET", f"/v2/shoal/nodes/{b}/feed", position=0)
    assert r.status_code == 403 and "faultstring" in r.json()
    r = alice.request("GET", f"/v2/shoal/nodes/{a}/feed", position=0)
    assert r.status_code in (401, 403)
    for bad in ("-1", "x", str(2**63)):
        r = as_a.request("GET", f"/v2/shoal/nodes/{a}/feed", position=bad)
        assert r.status_code == 400 and "faultstring" in r.json(), r.text
    r = as_a.request("GET", f"/v2/shoal/nodes/{a}/feed", position=0, timeout=10_000)
    assert r.status_code == 400
