"""`shoal bench control`: the controller under a cloud's worth of load balancers.

Starts a controller on a temporary database (SQLite, or a throwaway PostgreSQL), creates N
L4 load balancers with M members each through the HTTP API (one request per object, as a
tenant's automation would), and reports the write latency distribution, how long an agent
takes to fetch its complete desired state, and how soon a long-polling agent hears of a write."""

from __future__ import annotations

import contextlib
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import uvicorn

from shoal.controller.app import SERVER_HTTP, SERVER_LOOP, create_app
from shoal.controller.settings import load_settings
from shoal.lab.postgres import throwaway_postgres

__all__ = ["ControlBench", "controller", "database_url", "measure", "percentile", "run"]

ADMIN = "bench-admin-secret"


@dataclass
class ControlBench:
    database: str
    load_balancers: int
    members_per_lb: int
    writes: int
    write_p50_ms: float
    write_p99_ms: float
    write_max_ms: float
    writes_per_second: float
    full_state_ms: float  # median of 5 complete desired-state fetches by an agent
    full_state_bytes: int
    notify_p50_ms: float  # write returned -> a long-polling agent has the new state
    notify_p99_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def controller(url: str, state_dir: str) -> Iterator[str]:
    """A controller on a free port of 127.0.0.1, in this process: its base URL."""
    settings = load_settings(database_url=url, state_dir=state_dir, bootstrap_token=ADMIN)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            loop=SERVER_LOOP,
            http=SERVER_HTTP,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def database_url(kind: str, tmp: str) -> contextlib.AbstractContextManager[str]:
    """A SQLite file in tmp, or a throwaway PostgreSQL: the URL, for the duration."""
    if kind == "postgresql":
        return throwaway_postgres("shoal_bench")
    return contextlib.nullcontext(f"sqlite:///{tmp}/controller.db")


def run(
    lbs: int = 1000,
    members: int = 10,
    database: str = "sqlite",
    progress: Callable[[str, float], None] | None = None,
) -> ControlBench:
    with (
        tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp,
        database_url(database, tmp) as url,
        controller(url, tmp) as base,
    ):
        return measure(base, lbs, members, database, progress)


def measure(
    base: str, lbs: int, members: int, database: str, progress: Callable[[str, float], None] | None
) -> ControlBench:
    headers = {"X-Auth-Token": ADMIN}
    latencies: list[float] = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as c:

        def write(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
            t0 = time.perf_counter()
            r = c.request(method, path, json=body)
            latencies.append((time.perf_counter() - t0) * 1000)
            if r.status_code >= 300:
                raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
            return r.json() if r.content else {}

        vip = 0
        started = time.perf_counter()
        for i in range(lbs):
            lb = write(
                "POST",
                "/v2/lbaas/loadbalancers",
                {"loadbalancer": {"name": f"lb-{i}", "flavor_id": "l4"}},
            )["loadbalancer"]
            li = write(
                "POST",
                "/v2/lbaas/listeners",
                {"listener": {"loadbalancer_id": lb["id"], "protocol": "TCP", "protocol_port": 80}},
            )
            pool = write(
                "POST",
                "/v2/lbaas/pools",
                {
                    "pool": {
                        "listener_id": li["listener"]["id"],
                        "protocol": "TCP",
                        "lb_algorithm": "SOURCE_IP_PORT",
                    }
                },
            )["pool"]
            for _ in range(members):
                vip += 1
                write(
                    "POST",
                    f"/v2/lbaas/pools/{pool['id']}/members",
                    {
                        "member": {
                            "address": f"10.{(vip >> 16) & 255}.{(vip >> 8) & 255}.{vip & 255}",
                            "protocol_port": 80,
                        }
                    },
                )
            if progress and (i % 10 == 0 or i == lbs - 1):
                progress(f"creating load balancers ({i + 1}/{lbs})", (i + 1) / lbs)
        elapsed = time.perf_counter() - started

        enrolled = c.post(
            "/v2/shoal/enrollments",
            json={"enrollment": {"name": "bench-l4", "role": "l4"}},
        ).json()["enrollment"]
        ah = {"X-Auth-Token": enrolled["credential"]}
        node = c.post(
            "/v2/shoal/nodes", json={"name": "bench-l4", "role": "l4"}, headers=ah
        ).json()["node"]
        fetches, size, seq = [], 0, 0
        for _ in range(5):
            t0 = time.perf_counter()
            r = c.get(f"/v2/shoal/nodes/{node['id']}/desired-state", headers=ah)
            fetches.append((time.perf_counter() - t0) * 1000)
            size, seq = len(r.content), r.json()["seq"]
            c.post(f"/v2/shoal/nodes/{node['id']}/report", json={"seq": seq}, headers=ah)
        if progress:
            progress("long-poll notification", 0.0)
        notify = _notify_latency(base, ah, node["id"], seq, c)
    return ControlBench(
        database,
        lbs,
        members,
        len(latencies),
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        max(latencies),
        len(latencies) / elapsed,
        statistics.median(fetches),
        size,
        percentile(notify, 0.5),
        percentile(notify, 0.99),
    )


def _poll_after_write(
    agent: httpx.Client, admin: httpx.Client, node_id: str, lb_id: str, seq: int, label: str
) -> tuple[float, int]:
    """One round: an agent long-polls past seq, a write lands; ms from the write's response
    to the poll's answer (0 when the answer came first), and the new seq."""
    got: dict[str, float] = {}

    def poll() -> None:
        r = agent.get(
            f"/v2/shoal/nodes/{node_id}/desired-state", params={"since": seq, "timeout": 30}
        )
        got["at"] = time.perf_counter()
        got["seq"] = r.json()["seq"]

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.05)  # the poll is waiting
    admin.put(f"/v2/lbaas/loadbalancers/{lb_id}", json={"loadbalancer": {"description": label}})
    written = time.perf_counter()
    thread.join(30)
    return max(0.0, (got["at"] - written) * 1000), int(got["seq"])


def _notify_latency(
    base: str,
    agent_headers: dict[str, str],
    node_id: str,
    seq: int,
    admin: httpx.Client,
    rounds: int = 20,
) -> list[float]:
    out = []
    lb = admin.get("/v2/lbaas/loadbalancers", params={"limit": 1}).json()["loadbalancers"][0]
    with httpx.Client(base_url=base, headers=agent_headers, timeout=60) as agent:
        for i in range(rounds):
            ms, seq = _poll_after_write(agent, admin, node_id, lb["id"], seq, f"round {i}")
            out.append(ms)
            agent.post(f"/v2/shoal/nodes/{node_id}/report", json={"seq": seq})
    return out
