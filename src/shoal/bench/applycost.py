"""What one change costs the L4 agent: CPU seconds to apply a desired state of N load
balancers the first time (a snapshot: parse, fold, apply), then a feed delta with one member
drained (parse, fold, apply), then an empty delta.

Runs the agent's own path (the typed feed, translate, fit, plan, write) on in-memory maps, or
on a real data plane when given one, so the figure is the agent's, not a model of it.
`python -m shoal.bench.applycost [N] [MEMBERS] [monitors]` prints the three costs (the drain:
the median, min and max of 9, each on another load balancer)."""

from __future__ import annotations

import contextlib
import copy
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from shoal.agents.api import AgentApi
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.dataplane.balancer import Balancer
from shoal.wire.feed import Feed

__all__ = ["ApplyCost", "desired_state", "load_balancer", "measure", "offline_agent"]


@dataclass(frozen=True)
class ApplyCost:
    load_balancers: int
    members: int
    monitors: bool
    first_s: float  # CPU seconds of the first apply
    drain_s: float  # one member drained (weight 0) among all load balancers: the median
    drain_min_s: float  # of `repeat` drains, each on another load balancer
    drain_max_s: float
    noop_s: float  # the same desired state again

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def health_monitor(i: int) -> dict[str, Any]:
    return {"id": f"hm-{i}", "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 3}


def load_balancer(i: int, members: int, monitors: bool = False) -> dict[str, Any]:
    pool = {
        "id": f"pool-{i}",
        "admin_state_up": True,
        "lb_algorithm": "ROUND_ROBIN",
        "healthmonitor": health_monitor(i) if monitors else None,
        "members": [
            {
                "id": f"m-{i}-{j}",
                "address": f"10.{(i >> 8) & 255}.{i & 255}.{j + 1}",
                "protocol_port": 8080,
                "weight": 1,
                "backup": False,
                "admin_state_up": True,
                "monitor_address": None,
                "monitor_port": None,
            }
            for j in range(members)
        ],
    }
    listener = {
        "id": f"li-{i}",
        "protocol": "TCP",
        "protocol_port": 80,
        "admin_state_up": True,
        "default_pool_id": pool["id"],
        "allowed_cidrs": None,
    }
    config = {
        "kind": "l4",
        "admin_state_up": True,
        "vip_address": f"198.{18 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}",
        "pools": [pool],
        "listeners": [listener],
    }
    return {
        "id": f"lb-{i:05d}",
        "revision": 1,
        "config": config,
        "member_health": {},
        "health_checks": [pool["id"]] if monitors else [],
    }


def desired_state(
    n: int, members: int = 10, seq: int = 1, monitors: bool = False
) -> dict[str, Any]:
    return {
        "seq": seq,
        "settings": {"seed": "bench"},
        "node": {"admin_state": "ACTIVE"},
        "load_balancers": [load_balancer(i, members, monitors) for i in range(n)],
    }


@contextlib.contextmanager
def offline_agent(balancer: Balancer) -> Iterator[L4Agent]:
    """An L4 agent on this data plane with no controller, in a throwaway state dir; its
    health checks are planned, never run, so no probe leaves the process."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = L4AgentConfig(
            controller="", token="", name="bench", interface="lo", state_dir=Path(tmp)
        )
        agent = L4Agent(cfg, cast(AgentApi, None))
        agent.health.close()
        agent.lb = balancer
        try:
            yield agent
        finally:
            agent.health.close()


def _cpu(agent: L4Agent, answer: str) -> float:
    """An answer as the agent's loop handles it: parse, fold into its state, apply."""
    start = time.process_time()
    agent.desired.merge(Feed.model_validate_json(answer))
    agent.apply(agent.desired)
    return time.process_time() - start


def measure(
    n: int = 1000,
    members: int = 10,
    balancer: Balancer | None = None,
    monitors: bool = False,
    repeat: int = 1,
) -> ApplyCost:
    fake = Balancer.fake(max_vips=max(64, n), max_backends=max(1024, n * members))
    with offline_agent(balancer or fake) as agent:
        desired = desired_state(n, members, monitors=monitors)
        first = _cpu(agent, json.dumps(desired))
        drains = []
        for k in range(repeat):  # each on another load balancer
            lb = copy.deepcopy(desired["load_balancers"][(n // 2 + 37 * k) % n])
            lb["config"]["pools"][0]["members"][0]["weight"] = 0
            lb["revision"] = 2 + k
            delta = {**desired, "seq": 2 + k, "snapshot": False, "load_balancers": [lb]}
            drains.append(_cpu(agent, json.dumps(delta)))
        empty = {**delta, "seq": 2 + repeat, "load_balancers": []}
        noop = _cpu(agent, json.dumps(empty))
    return ApplyCost(
        n, members, monitors, first, statistics.median(drains), min(drains), max(drains), noop
    )


if __name__ == "__main__":
    n, members = ([int(a) for a in sys.argv[1:3]] + [1000, 10])[:2]
    print(measure(n, members, monitors="monitors" in sys.argv[3:], repeat=9).as_dict())
