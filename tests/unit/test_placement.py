"""The L7 placement planner: invariants under any mix of nodes and history (hypothesis), and
the operator-visible behaviours one by one."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.controller.services.placement import ACTIVE, DRAINING, L7Node, Slot, plan

NOW = dt.datetime(2026, 1, 1, 12, 0, 0)


def node(id_: str, cluster: str, capacity: int = 100, **kw: bool) -> L7Node:
    return L7Node(
        id=id_,
        name=id_,
        cluster=cluster,
        capacity=capacity,
        present=kw.get("present", True),
        accepting=kw.get("present", True) and kw.get("accepting", True),  # dead never accepts
    )


def run(lbs: list[str], nodes: list[L7Node], current: set[Slot] | None = None, **kw):  # type: ignore[no-untyped-def]
    return plan(lbs, nodes, current or set(), NOW, drain_seconds=60, **kw)


def active(slots: set[Slot]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in slots:
        if s.state == ACTIVE:
            out.setdefault(s.lb_id, set()).add(s.node_id)
    return out


FOUR = [node("a1", "a"), node("a2", "a"), node("b1", "b"), node("b2", "b")]


def test_each_lb_lands_in_two_clusters_and_spreads() -> None:
    lbs = [f"lb{i}" for i in range(40)]
    result = run(lbs, FOUR)
    placed = active(result.slots)
    cluster = {n.id: n.cluster for n in FOUR}
    for lb in lbs:
        assert sorted(cluster[n] for n in placed[lb]) == ["a", "b"]
    load = Counter(n for nodes in placed.values() for n in nodes)
    assert load == {"a1": 20, "a2": 20, "b1": 20, "b2": 20}
    assert not result.unplaced


def test_capacity_is_packed_by_utilisation() -> None:
    nodes = [node("big", "a", 30), node("small", "a", 10), node("b1", "b", 100)]
    placed = active(run([f"lb{i}" for i in range(20)], nodes).slots)
    load = Counter(n for nodes_ in placed.values() for n in nodes_)
    assert load["big"] == 15 and load["small"] == 5  # 50 % each


def test_full_tier_reports_unplaced_and_one_cluster_is_degraded() -> None:
    nodes = [node("a1", "a", 1), node("b1", "b", 1)]
    result = run(["lb1", "lb2"], nodes)
    assert len(active(result.slots)) == 1
    (missing,) = result.unplaced
    assert "no L7 node has free capacity" in result.unplaced[missing]
    one = run(["lb1"], [node("a1", "a")])
    assert active(one.slots) == {"lb1": {"a1"}}
    assert "1 of 2 L7 clusters" in one.unplaced["lb1"]


def test_placements_are_sticky() -> None:
    first = run([f"lb{i}" for i in range(10)], FOUR)
    again = run([f"lb{i}" for i in range(10)], FOUR, first.slots)
    assert again.slots == first.slots and not again.events


def test_drained_node_moves_its_lbs_within_the_cluster_and_drains() -> None:
    first = run(["lb1", "lb2"], FOUR)
    on_a1 = {s.lb_id for s in first.slots if s.node_id == "a1"}
    assert on_a1
    drained = [node("a1", "a", accepting=False), *FOUR[1:]]
    result = run(["lb1", "lb2"], drained, first.slots)
    for lb in on_a1:
        assert Slot(lb, "a1", DRAINING, NOW + dt.timedelta(seconds=60)) in result.slots
        assert "a2" in active(result.slots)[lb]
    # After drain_until the old placement goes; undrained before that, it comes back.
    later = plan(
        ["lb1", "lb2"], drained, result.slots, NOW + dt.timedelta(seconds=61), drain_seconds=60
    )
    assert not any(s.node_id == "a1" for s in later.slots)


def test_undrained_node_takes_back_what_it_still_drains() -> None:
    first = run(["lb1"], [node("a1", "a"), node("b1", "b")])
    drained = run(["lb1"], [node("a1", "a", accepting=False), node("b1", "b")], first.slots)
    assert active(drained.slots) == {"lb1": {"b1"}}  # nowhere else to go in cluster a
    back = run(["lb1"], [node("a1", "a"), node("b1", "b")], drained.slots)
    assert active(back.slots) == {"lb1": {"a1", "b1"}}
    assert all(s.drain_until is None for s in back.slots)


def test_departed_node_is_replaced_at_once() -> None:
    first = run(["lb1"], FOUR)
    gone_id = next(s.node_id for s in first.slots if s.node_id.startswith("a"))
    nodes = [n if n.id != gone_id else node(gone_id, "a", present=False) for n in FOUR]
    result = run(["lb1"], nodes, first.slots)
    assert not any(s.node_id == gone_id for s in result.slots)
    assert len(active(result.slots)["lb1"]) == 2
    assert any(kind == "placement_lost" for _, kind, _ in result.events)


def test_a_joining_node_gets_its_share_at_a_bounded_pace() -> None:
    lbs = [f"lb{i}" for i in range(20)]
    two = [node("a1", "a"), node("b1", "b")]
    first = run(lbs, two)
    grown = [*two, node("a2", "a")]
    step = run(lbs, grown, first.slots, max_moves=4)
    assert sum(1 for s in step.slots if s.node_id == "a2") == 4
    slots = step.slots
    for _ in range(10):
        slots = run(lbs, grown, slots, max_moves=4).slots
    load = Counter(s.node_id for s in slots if s.state == ACTIVE)
    assert load["a1"] == 10 and load["a2"] == 10 and load["b1"] == 20
    moved = {s.lb_id for s in slots if s.state == DRAINING}
    assert len(moved) == 10  # each move left a draining copy behind, none moved twice


def test_deleted_lbs_lose_their_placements() -> None:
    first = run(["lb1", "lb2"], FOUR)
    assert {s.lb_id for s in run(["lb2"], FOUR, first.slots).slots} == {"lb2"}


nodes_strategy = st.lists(
    st.builds(
        node,
        st.text("abcdefgh", min_size=2, max_size=3),
        st.sampled_from(["x", "y", "z"]),
        st.integers(1, 8),
        present=st.booleans(),
        accepting=st.booleans(),
    ),
    max_size=8,
    unique_by=lambda n: n.id,
)


@settings(max_examples=300, deadline=None)
@given(
    nodes=nodes_strategy,
    later_nodes=nodes_strategy,
    lbs=st.lists(st.text("0123456789", min_size=1, max_size=3), unique=True, max_size=30),
    moves=st.integers(0, 5),
)
def test_invariants(
    nodes: list[L7Node], later_nodes: list[L7Node], lbs: list[str], moves: int
) -> None:
    first = run(lbs, nodes, max_moves=moves)
    result = run(lbs, later_nodes, first.slots, max_moves=moves)
    by_id = {n.id: n for n in later_nodes}
    placed = active(result.slots)
    load = Counter(s.node_id for s in result.slots if s.state == ACTIVE)
    for s in result.slots:
        n = by_id[s.node_id]
        assert n.present and s.lb_id in lbs  # nothing on departed nodes or for gone LBs
        if s.state == DRAINING:
            assert s.drain_until is not None and s.drain_until > NOW
    for where in placed.values():
        clusters = [by_id[n].cluster for n in where]
        assert len(clusters) == len(set(clusters)) <= 2  # never twice in one cluster
    for node_id, count in load.items():
        n = by_id[node_id]
        # New placements respect capacity; sticky ones may exceed a lowered one.
        sticky = sum(1 for s in first.slots if s.node_id == node_id and s.state == ACTIVE)
        assert count <= max(n.capacity, sticky)
    for lb in lbs:
        usable = {n.cluster for n in later_nodes if n.accepting and load[n.id] < n.capacity}
        if len(placed.get(lb, ())) < 2 and usable - {by_id[n].cluster for n in placed.get(lb, ())}:
            raise AssertionError(f"{lb} could take a free cluster: {usable}")
    assert (set(lbs) - set(placed)) <= set(result.unplaced)
