"""The L4 agent's cost per change follows what changed: a member drained among many load
balancers re-translates that one load balancer, rebuilds one table and writes one VIP's
backends; an unchanged desired state writes nothing but the settings word."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any, cast

import pytest

from shoal.agents.api import AgentApi
from shoal.agents.l4 import translate as translate_mod
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.bench.applycost import desired_state, measure
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.maps import FakeMap


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
            assert len(writes) == 1  # the drained member's entry
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
