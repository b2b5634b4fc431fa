"""Capacity planned per load balancer: exactly full applies everything, one over reports that
one load balancer ("data plane full: ...") and applies the others, and a swap at full (one
load balancer out, another in; or a pool's members all replaced) applies without raising."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from shoal.agents.api import AgentApi
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.bench.applycost import load_balancer
from shoal.dataplane.balancer import Balancer


@pytest.fixture
def make_agent() -> Iterator[Any]:
    made: list[L4Agent] = []
    with tempfile.TemporaryDirectory() as tmp:

        def make(max_vips: int, max_backends: int) -> L4Agent:
            cfg = L4AgentConfig(
                controller="", token="", name="cap", interface="lo", state_dir=Path(tmp)
            )
            agent = L4Agent(cfg, cast(AgentApi, None))
            agent.lb = Balancer.fake(max_vips=max_vips, max_backends=max_backends)
            made.append(agent)
            return agent

        yield make
    for agent in made:
        agent.health.close()


def desired(lbs: list[dict[str, Any]], seq: int = 1) -> dict[str, Any]:
    return {"seq": seq, "settings": {"seed": "cap"}, "node": {}, "load_balancers": lbs}


def held(agent: L4Agent) -> tuple[int, int]:
    assert agent.lb is not None
    return len(agent.lb.vips()), len(agent.lb.backends())


def test_exactly_full_applies_everything(make_agent: Any) -> None:
    agent = make_agent(4, 40)
    agent.apply(desired([load_balancer(i, 10) for i in range(4)]))
    assert agent.errors == []
    assert agent.applied == {f"lb-{i:05d}" for i in range(4)}
    assert held(agent) == (4, 40)


def test_one_vip_over_reports_that_load_balancer_only(make_agent: Any) -> None:
    agent = make_agent(4, 100)
    agent.apply(desired([load_balancer(i, 10) for i in range(5)]))
    assert [(e["load_balancer_id"], e["reason"][:16]) for e in agent.errors] == [
        ("lb-00004", "data plane full:")
    ]
    assert held(agent) == (4, 40)


def test_one_backend_over_reports_that_load_balancer_only(make_agent: Any) -> None:
    agent = make_agent(8, 39)
    agent.apply(desired([load_balancer(i, 10) for i in range(3)] + [load_balancer(3, 10)]))
    assert [e["load_balancer_id"] for e in agent.errors] == ["lb-00003"]
    assert "10 backend(s)" in agent.errors[0]["reason"]
    assert held(agent) == (3, 30)


def test_applied_load_balancers_keep_their_place_when_a_newcomer_does_not_fit(
    make_agent: Any,
) -> None:
    agent = make_agent(2, 100)
    agent.apply(desired([load_balancer(i, 1) for i in (5, 6)]))
    # lb-00001 sorts first, but the node is full with load balancers it already serves.
    agent.apply(desired([load_balancer(i, 1) for i in (1, 5, 6)], seq=2))
    assert [e["load_balancer_id"] for e in agent.errors] == ["lb-00001"]
    assert agent.applied == {"lb-00005", "lb-00006"}


def test_swapping_a_vip_at_full_does_not_raise(make_agent: Any) -> None:
    agent = make_agent(4, 40)
    agent.apply(desired([load_balancer(i, 10) for i in range(4)]))
    agent.apply(desired([load_balancer(i, 10) for i in range(1, 5)], seq=2))
    assert agent.errors == []
    assert agent.applied == {f"lb-{i:05d}" for i in range(1, 5)}
    assert held(agent) == (4, 40)


def test_replacing_every_member_at_full_does_not_raise(make_agent: Any) -> None:
    agent = make_agent(4, 40)
    lbs = [load_balancer(i, 10) for i in range(4)]
    agent.apply(desired(lbs))
    for j, member in enumerate(lbs[2]["config"]["pools"][0]["members"]):
        member["address"] = f"10.99.0.{j + 1}"
    lbs[2]["revision"] = 2
    agent.apply(desired(lbs, seq=2))
    assert agent.errors == []
    assert agent.lb is not None
    addresses = {str(b.address) for v in agent.lb.current_vips() for b in v.backends}
    assert {f"10.99.0.{j + 1}" for j in range(10)} <= addresses
    assert held(agent) == (4, 40)


def test_a_restarted_agent_keeps_serving_what_the_maps_hold(make_agent: Any) -> None:
    first = make_agent(2, 100)
    first.apply(desired([load_balancer(i, 1) for i in (5, 6)]))
    again = make_agent(2, 100)  # a new process: nothing in memory, the same pinned maps
    assert first.lb is not None
    again.lb = Balancer(first.lb.maps, max_vips=2, max_backends=100)
    again.apply(desired([load_balancer(i, 1) for i in (1, 5, 6)], seq=2))
    assert [e["load_balancer_id"] for e in again.errors] == ["lb-00001"]
    assert again.applied == {"lb-00005", "lb-00006"}
