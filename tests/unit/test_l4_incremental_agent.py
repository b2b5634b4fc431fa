"""The L4 agent's cost per change follows what changed: a member drained among many load
balancers re-translates that one load balancer, rebuilds one table and writes that one VIP's
backend entries (the drained one, then each with the VIP's next table generation); an
unchanged desired state writes nothing but the settings word."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any, cast

import pytest

from shoal.agents.api import AgentApi
from shoal.agents.l4 import translate as translate_mod
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.bench.applycost import desired_state, load_balancer, measure
from shoal.dataplane.balancer import Balancer, SpecChanges
from shoal.dataplane.maps import FakeMap
from shoal.wire.feed import Feed


def test_a_drain_among_many_touches_one_load_balancer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = translate_mod.l4_vips

    def counting(config: Any, *args: Any) -> Any:
        calls.append(config.vip_address)
        return real(config, *args)

    monkeypatch.setattr(translate_mod, "l4_vips", counting)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = L4AgentConfig(controller="", token="", name="i", interface="lo", state_dir=Path(tmp))
        agent = L4Agent(cfg, cast(AgentApi, None))
        lb = agent.lb = Balancer.fake(max_vips=64, max_backends=1024)
        try:
            desired = desired_state(50, 4)
            agent.apply(desired)
            assert len(calls) == 50
            calls.clear()
            builds = lb.table_cache.builds
            writes: list[bytes] = []
            store = cast(FakeMap, lb.maps.backends.store)
            inner = store.update
            monkeypatch.setattr(
                store, "update", lambda k, v, *a: (writes.append(k), inner(k, v, *a))[1]
            )
            drained = copy.deepcopy(desired)
            target = drained["load_balancers"][7]
            target["config"]["pools"][0]["members"][0]["weight"] = 0
            target["revision"] = 2
            agent.apply(drained)
            assert calls == [target["config"]["vip_address"]]
            assert lb.table_cache.builds == builds + 1
            # The drained member's entry, then the VIP's 4 entries with its next table
            # generation (docs/dataplane.md, "A reused 5-tuple"): that one VIP's, no other's.
            own = {
                s
                for s, b in lb.backends().items()
                if b.vip_id == lb.backends()[int.from_bytes(writes[0], "little")].vip_id
            }
            assert len(writes) == 5 and {int.from_bytes(k, "little") for k in writes} == own
            calls.clear()
            writes.clear()
            agent.apply(copy.deepcopy(drained))
            assert calls == [] and writes == []
            assert lb.table_cache.builds == builds + 1
        finally:
            agent.health.close()


def test_the_bench_helper_measures_the_three_costs() -> None:
    cost = measure(20, 3)
    assert cost.load_balancers == 20 and cost.members == 3
    assert cost.first_s > 0 and cost.drain_s >= 0 and cost.noop_s >= 0


def test_feed_deltas_tell_the_data_plane_only_what_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a feed delta the agent hands Balancer.apply the changed load balancers' specs
    (SpecChanges), not every VIP to compare, and still ends where a fresh agent applying
    the whole state ends: the same VIPs, tables and digests."""
    seen: list[SpecChanges | None] = []
    real = Balancer.apply

    def spying(self: Balancer, config: Any, changes: SpecChanges | None = None) -> Any:
        seen.append(changes)
        return real(self, config, changes)

    monkeypatch.setattr(Balancer, "apply", spying)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = L4AgentConfig(controller="", token="", name="i", interface="lo", state_dir=Path(tmp))
        agent = L4Agent(cfg, cast(AgentApi, None))
        agent.lb = Balancer.fake(max_vips=64, max_backends=1024)
        fresh = L4Agent(
            L4AgentConfig(controller="", token="", name="f", interface="lo", state_dir=Path(tmp)),
            cast(AgentApi, None),
        )
        fresh.lb = Balancer.fake(max_vips=64, max_backends=1024)
        try:
            whole = desired_state(30, 3)
            agent.desired.merge(Feed.model_validate(whole))
            agent.apply(agent.desired)
            assert seen == [None]  # the first apply looks at everything
            drained = copy.deepcopy(whole["load_balancers"][7])
            drained["config"]["pools"][0]["members"][0]["weight"] = 0
            drained["revision"] = 2
            added = load_balancer(40, 3)
            steps: list[dict[str, Any]] = [
                {"load_balancers": [drained]},
                {"load_balancers": [added]},
                {"load_balancers": [], "deleted": [whole["load_balancers"][3]["id"]]},
                {"load_balancers": []},
            ]
            for seq, step in enumerate(steps, start=2):
                delta = {**whole, "seq": seq, "snapshot": False, **step}
                agent.desired.merge(Feed.model_validate(delta))
                agent.apply(agent.desired)
            hints = seen[1:]
            assert all(h is not None for h in hints)
            by_name = {h.new[0].name for h in hints if h is not None and h.new}
            assert len(hints[0].new) == 1 and len(hints[0].old) == 1  # type: ignore[union-attr]
            assert len(by_name) == 2  # the drained one, then the added one
            assert hints[2].new == [] and len(hints[2].old) == 1  # type: ignore[union-attr]
            assert hints[3].new == [] and hints[3].old == []  # type: ignore[union-attr]
            fresh.apply(agent.desired)
            assert agent.digests == fresh.digests
            assert sorted(agent.lb.vips()) == sorted(fresh.lb.vips())
            # The same VIPs and backends (ids differ: they follow each node's history).
            key = lambda v: v.name  # noqa: E731
            assert sorted(agent.lb.current_vips(), key=key) == sorted(
                fresh.lb.current_vips(), key=key
            )
        finally:
            agent.health.close()
            fresh.health.close()
