"""A tenant against a full L4 node. Before: swapping a load balancer at max_vips raised
StopIteration out of the agent loop (the agent died: every tenant's node stopped applying),
and replacing a pool's members at full failed the whole node's apply. Now the tenant's own
load balancer is refused or applied, the others always apply, and no packet of a removed VIP
can reach another VIP's backends while ids are reused."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from shoal.agents.api import AgentApi
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.bench.applycost import load_balancer
from shoal.dataplane import abi
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.maps import FakeMap
from shoal.dataplane.tables import FakeTables


@pytest.fixture
def agent() -> Iterator[L4Agent]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = L4AgentConfig(controller="", token="", name="n", interface="lo", state_dir=Path(tmp))
        a = L4Agent(cfg, cast(AgentApi, None))
        a.lb = Balancer.fake(max_vips=4, max_backends=40)
        yield a
        a.health.close()


def desired(lbs: list[dict[str, Any]], seq: int) -> dict[str, Any]:
    return {"seq": seq, "settings": {"seed": "s"}, "node": {}, "load_balancers": lbs}


def watch_invariant(lb: Balancer) -> list[str]:
    """After every single map write: each VIP's table holds only that VIP's backends."""
    broken: list[str] = []
    vips_store = cast(FakeMap, lb.maps.vips.store)
    backends_store = cast(FakeMap, lb.maps.backends.store)
    tables = cast(FakeTables, lb.maps.tables)

    def check(what: str) -> None:
        for kb, vb in vips_store.data.items():
            vip_id = abi.VipVal.from_buffer_copy(vb).vip_id
            for i in tables.tables.get(vip_id, []):
                raw = backends_store.data.get(int(i).to_bytes(4, "little"))
                b = abi.Backend.from_buffer_copy(raw) if raw else None
                if b is None or b.vip_id != vip_id:
                    broken.append(f"after {what}: VIP {kb.hex()[:8]} slot -> backend {int(i)}")

    def wrap(obj: Any, name: str) -> None:
        inner = getattr(obj, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            out = inner(*args, **kwargs)
            check(name)
            return out

        setattr(obj, name, wrapped)

    for obj in (vips_store, backends_store):
        wrap(obj, "update")
        wrap(obj, "delete")
    wrap(tables, "swap")
    wrap(tables, "remove")
    return broken


def test_churning_at_full_never_stops_the_agent_nor_the_others(agent: L4Agent) -> None:
    assert agent.lb is not None
    broken = watch_invariant(agent.lb)
    victims = [load_balancer(i, 10) for i in range(3)]
    agent.apply(desired([*victims, load_balancer(100, 10)], 1))
    for seq in range(2, 12):  # the attacker deletes and creates, always at full
        agent.apply(desired([*victims, load_balancer(100 + seq, 10)], seq))
        assert agent.errors == []
        assert {f"lb-{i:05d}" for i in range(3)} <= agent.applied
    assert broken == []


def test_an_oversized_load_balancer_is_refused_alone(agent: L4Agent) -> None:
    victims = [load_balancer(i, 10) for i in range(3)]
    attacker = load_balancer(0, 11)
    attacker["id"] = "lb-00000-attacker"  # sorts among the victims
    attacker["config"]["vip_address"] = "203.0.113.9"
    agent.apply(desired([attacker, *victims], 1))
    assert [e["load_balancer_id"] for e in agent.errors] == ["lb-00000-attacker"]
    assert agent.errors[0]["reason"].startswith("data plane full:")
    assert agent.applied == {f"lb-{i:05d}" for i in range(3)}
