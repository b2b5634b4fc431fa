"""The L4 agent's incremental path ends where a full apply ends, also when members' health
moves. Random feed deltas change member health (checker results down and up), drain and
restore members, flip members' and monitors' admin state, take checks away from this node,
place load balancers on L7 nodes, change the node's L7 checks, add and delete load balancers
and restart the agent from its saved state (the maps kept, as pinned maps are). After every
step the agent must equal:

- a twin that follows the same history without any incremental part (a new agent on every
  step: no memo, no kept parts; its data plane plans every VIP): the maps byte for byte;
- a fresh agent on fresh maps that applies one snapshot of the same state: table digests,
  refusals, owners, announced addresses, the checks it runs and the L7 nodes it watches.

No check runs: the schedulers are stopped and the L7 watch is a recorder, so no probe leaves
the process."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.agents.api import AgentApi
from shoal.agents.bgp import NullSpeaker
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.agents.l4.l7watch import L7Target
from shoal.bench.applycost import desired_state, load_balancer
from shoal.dataplane.balancer import Balancer
from shoal.wire.feed import DesiredState, Feed

from .test_apply_by_identity import raw
from .test_incremental_apply import observed

LBS = 8
MEMBERS = 4
OP = st.tuples(
    st.sampled_from(
        [
            "down",
            "down",
            "up",
            "up",
            "drain",
            "admin",
            "monitor",
            "unassign",
            "l7",
            "node_checks",
            "add",
            "delete",
        ]
    ),
    st.integers(0, LBS + 3),  # which load balancer (new ones beyond LBS)
    st.integers(0, MEMBERS - 1),  # which member or L7 node
)
STEP = st.one_of(st.lists(OP, min_size=1, max_size=3), st.just("restart"))


class Recorder:
    """Stands in for the L7 watch: keeps the targets it is given, probes nothing."""

    def __init__(self) -> None:
        self.targets: dict[str, L7Target] = {}

    def update(self, targets: dict[str, L7Target]) -> None:
        self.targets = dict(targets)

    def dead(self) -> set[str]:
        return set()

    def close(self) -> None:
        pass


def _agent(tmp: Path, name: str, balancer: Balancer) -> L4Agent:
    cfg = L4AgentConfig(controller="", token="", name=name, interface="lo", state_dir=tmp)
    agent = L4Agent(cfg, cast(AgentApi, None), NullSpeaker())
    agent.health.close()  # plans checks, runs none
    agent.l7watch = Recorder()  # type: ignore[assignment]
    agent.lb = balancer
    return agent


def _balancer(incremental: bool = True) -> Balancer:
    lb = Balancer.fake(max_vips=64, max_backends=1024)
    lb.incremental = incremental
    return lb


def _node_checks(variant: int) -> list[dict[str, Any]]:
    return [
        {"node_id": f"l7-{k}", "address": f"10.200.0.{k + 1}", "port": 8404 + variant % 2}
        | {"interval": 1}
        for k in range(variant % 3)
    ]


class History:
    """The load balancers' documents in the feed's order, and the node's L7 checks."""

    def __init__(self) -> None:
        start = desired_state(LBS, MEMBERS, monitors=True)
        self.docs: dict[str, dict[str, Any]] = {d["id"]: d for d in start["load_balancers"]}
        # As in the controller, one (id, revision) names one configuration: a load balancer
        # made again under an id seen before gets a revision above every earlier one.
        self.top: dict[str, int] = {k: d["revision"] for k, d in self.docs.items()}
        self.node_checks: list[dict[str, Any]] = []
        self.seq = 1

    def feed(self, changed: list[dict[str, Any]], deleted: list[str]) -> Feed:
        self.seq += 1
        doc = {
            **desired_state(0, MEMBERS, self.seq),
            "node_checks": self.node_checks,
            "snapshot": False,
            "load_balancers": changed,
            "deleted": deleted,
        }
        return Feed.model_validate(doc)

    def snapshot_feed(self) -> Feed:
        doc = {
            **desired_state(0, MEMBERS, self.seq),
            "node_checks": self.node_checks,
            "load_balancers": copy.deepcopy(list(self.docs.values())),
        }
        return Feed.model_validate(doc)

    def snapshot(self) -> DesiredState:
        return DesiredState.of(self.snapshot_feed())

    def change(self, ops: list[tuple[str, int, int]]) -> Feed:
        changed: dict[str, dict[str, Any]] = {}
        deleted: list[str] = []
        for what, i, j in ops:
            lb_id = load_balancer(i, MEMBERS)["id"]
            if what == "node_checks":
                self.node_checks = _node_checks(i + j)
                continue
            if what == "add" or lb_id not in self.docs:
                if what != "delete":
                    self.docs.pop(lb_id, None)
                    changed.pop(lb_id, None)
                    self.docs[lb_id] = load_balancer(i, MEMBERS, monitors=i % 2 == 0)
                    if lb_id in self.top:
                        self.docs[lb_id]["revision"] = self.top[lb_id] + 1
                    changed[lb_id] = self.docs[lb_id]
                continue
            if what == "delete":
                del self.docs[lb_id]
                changed.pop(lb_id, None)
                deleted.append(lb_id)
                continue
            lb = copy.deepcopy(self.docs[lb_id])
            pool = lb["config"]["pools"][0]
            member = pool["members"][j]
            if what in ("down", "up"):  # a checker's result, folded by the controller
                lb["member_health"][member["id"]] = "DOWN" if what == "down" else "ONLINE"
            else:
                lb["revision"] += 1
                if what == "drain":
                    member["weight"] = 0 if member["weight"] else 1
                elif what == "admin":
                    member["admin_state_up"] = not member["admin_state_up"]
                elif what == "monitor" and pool["healthmonitor"] is not None:
                    hm = pool["healthmonitor"]
                    hm["admin_state_up"] = not hm.get("admin_state_up", True)
                elif what == "unassign":  # the controller moves the checks to another node
                    lb["health_checks"] = [] if lb["health_checks"] else [pool["id"]]
                elif what == "l7":  # placed on L7 nodes: the VIP goes to them
                    lb["config"]["kind"] = "l7"
                    lb["l7_nodes"] = [
                        {
                            "id": f"l7-{k}",
                            "address": f"10.200.0.{k + 1}",
                            "state": "ACTIVE" if k != j else "DRAINING",
                            "healthy": (k + lb["revision"]) % 3 != 0,
                        }
                        for k in range(j + 1)
                    ]
            self.docs.pop(lb_id)  # a changed load balancer moves last, as in merge()
            self.docs[lb_id] = lb
            changed.pop(lb_id, None)
            changed[lb_id] = lb
        for lb in changed.values():  # each change its own position, as the controller's
            self.seq += 1
            lb["seq"] = self.seq
            self.top[lb["id"]] = max(self.top.get(lb["id"], 0), lb["revision"])
        return self.feed(copy.deepcopy(list(changed.values())), deleted)


def _view(agent: L4Agent) -> dict[str, Any]:
    """What the agent reports, announces and runs, without ids that depend on history."""
    assert isinstance(agent.speaker, NullSpeaker)
    return {
        "digests": agent.digests,
        "errors": agent.errors,
        "applied": agent.applied,
        "owners": agent.vip_owner,
        "announced": agent.speaker.announced,
        "checks": agent.health.planned(),
        "l7_targets": cast(Recorder, agent.l7watch).targets,
        "fit": agent._fit_totals,
    }


# About 90 s on a quiet 2-core machine; past the suite's 300 s on a loaded one.
@pytest.mark.timeout(1200)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=8))
def test_incremental_agent_with_health_changes_ends_where_a_full_apply_ends(
    steps: list[Any],
) -> None:
    history = History()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        maps, twin_maps = _balancer(), _balancer(incremental=False)
        agent = _agent(root / "agent", "inc", maps)
        agent.desired.merge(history.snapshot_feed())
        agent.apply(agent.desired)
        agent.store().save(agent.desired, set(agent.desired.lbs), True)
        _agent(root / "twin", "twin", twin_maps).apply(history.snapshot())  # in step: one each
        for step in steps:
            if step == "restart":  # a new process: state and position from disk, maps kept
                agent.store().close()
                agent = _agent(root / "agent", "inc", maps)
                agent.resume()
                agent.apply(agent.desired)
            else:
                feed = history.change(step)
                touched = agent.desired.merge(feed)
                agent.apply(agent.desired)
                agent.store().save(agent.desired, touched, False)
            whole = history.snapshot()
            assert agent.desired.comparable() == whole.comparable()
            twin = _agent(root / "twin", "twin", twin_maps)
            twin.apply(history.snapshot())
            fresh = _agent(root / "fresh", "fresh", _balancer())
            fresh.apply(whole)
            assert raw(maps) == raw(twin_maps)
            assert observed(maps) == observed(fresh.lb)  # type: ignore[arg-type]
            assert _view(agent) == _view(twin) == _view(fresh)
        agent.store().close()
