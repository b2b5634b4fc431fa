"""What one member change costs the L7 agent: its CPU (HAProxy's `-c` checks, which are its
children, included), wall time and reloads to apply a desired state of N HTTP load balancers
whose only change is one member's weight, on a real HAProxy in a namespace of its own.

`python -m shoal.bench.l7apply [N] [CHANGES]` (root, haproxy) prints the figures."""

from __future__ import annotations

import copy
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shoal import netns
from shoal.agents.api import AgentApi
from shoal.agents.l7.agent import L7Agent, L7AgentConfig

__all__ = ["L7ApplyCost", "desired_state", "load_balancer", "measure"]


@dataclass(frozen=True)
class L7ApplyCost:
    load_balancers: int
    members: int
    changes: int
    first_s: float  # wall time of the first apply (render, check, start)
    cpu_ms_per_change: float  # agent + its children (haproxy -c), median
    wall_ms_per_change: float  # median
    reloads_per_change: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_balancer(i: int, members: int) -> dict[str, Any]:
    """An HTTP load balancer in the shape the controller sends (fields the renderer reads)."""
    pool_id = f"pool-{i:05d}"
    listener = {
        "id": f"li-{i:05d}", "protocol": "HTTP", "protocol_port": 80, "connection_limit": -1,
        "default_pool_id": pool_id, "admin_state_up": True, "timeout_client_data": 50000,
        "timeout_member_connect": 5000, "timeout_member_data": 50000, "timeout_tcp_inspect": 0,
        "allowed_cidrs": [], "insert_headers": {}, "default_tls_container_ref": None,
        "sni_container_refs": [], "l7policies": [],
    }  # fmt: skip
    pool = {
        "id": pool_id, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
        "session_persistence": None, "admin_state_up": True, "healthmonitor": None,
        "members": [
            {"id": f"m-{i:05d}-{j:02d}", "address": "127.0.0.1", "protocol_port": 9000 + j,
             "weight": 1, "backup": False, "admin_state_up": True}
            for j in range(members)
        ],
    }  # fmt: skip
    return {
        "id": f"lb-{i:05d}", "kind": "l7", "admin_state_up": True,
        "vip_address": f"10.78.{i >> 8}.{i & 255}", "listeners": [listener], "pools": [pool],
    }  # fmt: skip


def desired_state(n: int, members: int, seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "load_balancers": [
            {"id": lb["id"], "revision": seq, "config": lb, "placement": "ACTIVE"}
            for lb in (load_balancer(i, members) for i in range(n))
        ],
        "certificates": {},
    }


def _cpu() -> float:
    own = time.process_time()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + kids.ru_utime + kids.ru_stime


def measure(n: int = 100, members: int = 10, changes: int = 10) -> L7ApplyCost:
    """In a namespace of its own (removed after), with HAProxy stopped after."""
    ns = f"shoal-l7cost-{os.getpid()}"
    netns.delete(ns)
    netns.add(ns)
    try:
        with tempfile.TemporaryDirectory(prefix="shoal-l7cost-") as tmp, netns.entered(ns):
            netns.run(["ip", "link", "set", "lo", "up"], ns)
            cfg = L7AgentConfig(
                controller="http://127.0.0.1:9", token="unused", name="l7cost",
                data_address="127.0.0.1", run_dir=Path(tmp) / "run",
                state_dir=Path(tmp) / "state", consolidate_after=3600.0,
            )  # fmt: skip
            agent = L7Agent(cfg, AgentApi(cfg.controller, cfg.token))
            try:
                agent.prepare()
                desired = desired_state(n, members, 1)
                t0 = time.perf_counter()
                agent.apply(desired)
                first = time.perf_counter() - t0
                reloads = agent.reloads
                cpu, wall = [], []
                for k in range(changes):
                    desired = copy.deepcopy(desired)
                    desired["seq"] += 1
                    lb = desired["load_balancers"][(k * 7919) % n]
                    member = lb["config"]["pools"][0]["members"][0]
                    member["weight"] = 0 if member["weight"] else 1  # drain, undrain
                    lb["revision"] = desired["seq"]
                    c0, w0 = _cpu(), time.perf_counter()
                    agent.apply(desired)
                    agent.flush()  # a batched reload, now
                    cpu.append((_cpu() - c0) * 1000)
                    wall.append((time.perf_counter() - w0) * 1000)
                per_reload = (agent.reloads - reloads) / changes
            finally:
                agent.close(stop_proxy=True)
    finally:
        netns.delete(ns)
    return L7ApplyCost(
        n, members, changes, first, statistics.median(cpu), statistics.median(wall), per_reload
    )


if __name__ == "__main__":
    n, changes = ([int(a) for a in sys.argv[1:3]] + [100, 10])[:2]
    print(measure(n, 10, changes).as_dict())
