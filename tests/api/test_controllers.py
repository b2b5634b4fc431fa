"""Two controller processes on one PostgreSQL, and an L4 agent given both URLs.

Wake-ups cross processes: with the head poll set to 10 s, only PostgreSQL's NOTIFY can wake
the agent long-polling one controller when a write lands on the other. Then the controller
the agent long-polls is killed (SIGKILL) mid-poll: the agent carries on through the other,
nothing acknowledged is lost, and load balancers go ACTIVE through the survivor."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from shoal.agents.api import AgentApi
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.dataplane.balancer import Balancer

from .helpers import ADMIN_SECRET


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class Controller:
    def __init__(self, name: str, db_url: str, tmp: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / f"{name}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "database_url": db_url,
                    "listen": f"127.0.0.1:{self.port}",
                    "state_dir": str(tmp / name),
                    "key_dir": str(tmp / "keys"),  # shared: one keyring for the database
                    "bootstrap_token": ADMIN_SECRET,
                    "feed_poll_interval": 10.0,
                    "node_dead_after": 60.0,
                }
            )
        )
        self.log = (tmp / f"{name}.log").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shoal.cli.main",
                "controller",
                "serve",
                "--config",
                str(config),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self.healthy, 60, f"controller {name}")

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"controller exited with {self.proc.returncode}")
        try:
            return httpx.get(f"{self.url}/healthcheck", timeout=2).text == "OK"
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


class QuietL4Agent(L4Agent):
    """The real L4 agent on the in-memory data plane (no XDP to attach or watch)."""

    def prepare(self) -> None:
        self.lb = Balancer.fake(max_vips=64, max_backends=1024)
        self.dataplane_ok = True

    def watch(self) -> None:
        pass


@pytest.fixture
def pg_url(postgres_server: str) -> str:
    name = f"ctl{os.getpid()}_{time.monotonic_ns() % 10**9}"
    base = postgres_server.rsplit("/", 1)[0]
    with psycopg.connect(
        base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


@pytest.fixture
def controllers(pg_url: str, tmp_path: Path) -> Iterator[list[Controller]]:
    started: list[Controller] = []
    try:
        # One after the other: the first migrates the database.
        for name in ("a", "b"):
            started.append(Controller(name, pg_url, tmp_path))
        yield started
    finally:
        for c in started:
            c.close()


def _admin(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"X-Auth-Token": ADMIN_SECRET}, timeout=30)


def _ok(r: httpx.Response) -> Any:
    assert r.status_code < 300, f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}"
    return r.json() if r.content else None


def _status(admin: httpx.Client, lb_id: str) -> str:
    lb = _ok(admin.get(f"/v2/lbaas/loadbalancers/{lb_id}"))["loadbalancer"]
    return str(lb["provisioning_status"])


def _active(admin: httpx.Client, lb_id: str) -> None:
    wait_for(lambda: _status(admin, lb_id) == "ACTIVE", 20, f"{lb_id} ACTIVE")


def _stack(admin: httpx.Client, members: int) -> dict[str, str]:
    """An L4 load balancer, each step applied by the agent before the next (409 else)."""
    lb = _ok(admin.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {"flavor_id": "l4"}}))
    lb_id = lb["loadbalancer"]["id"]
    _active(admin, lb_id)
    body: dict[str, Any] = {
        "listener": {"loadbalancer_id": lb_id, "protocol": "TCP", "protocol_port": 80}
    }
    li = _ok(admin.post("/v2/lbaas/listeners", json=body))["listener"]
    _active(admin, lb_id)
    body = {"pool": {"listener_id": li["id"], "protocol": "TCP", "lb_algorithm": "SOURCE_IP_PORT"}}
    pool = _ok(admin.post("/v2/lbaas/pools", json=body))["pool"]
    _active(admin, lb_id)
    body = {
        "members": [{"address": f"10.1.0.{i + 1}", "protocol_port": 80} for i in range(members)]
    }
    _ok(admin.put(f"/v2/lbaas/pools/{pool['id']}/members", json=body))
    return {"lb": lb_id, "pool": pool["id"]}


def _weights(agent: L4Agent, lb_id: str) -> dict[str, int]:
    lb = agent.desired.lbs.get(lb_id)
    if lb is None:
        return {}
    return {m.address: m.weight for p in lb.config.pools for m in p.members}


def test_two_controllers_wake_each_other_and_survive_one_killed(
    controllers: list[Controller], tmp_path: Path
) -> None:
    a, b = controllers
    admin_a, admin_b = _admin(a.url), _admin(b.url)
    body = {"enrollment": {"name": "l4-ha", "role": "l4"}}
    credential = _ok(admin_a.post("/v2/shoal/enrollments", json=body))["enrollment"]["credential"]
    # The lab's agents run this loop; b first, so it long-polls b.
    cfg = L4AgentConfig(
        controller=b.url,
        token=credential,
        name="l4-ha",
        interface="lo",
        state_dir=tmp_path / "agent",
        poll_wait=5,
    )
    agent = QuietL4Agent(cfg, AgentApi([b.url, a.url], credential))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: agent.seq >= 0, 30, "the agent's first snapshot")
        # Writes on a wake the agent long-polling b (NOTIFY; the poll would take 10 s):
        # each step of the stack waits for the agent to apply the previous one.
        started = time.monotonic()
        stack = _stack(admin_a, members=3)
        wait_for(lambda: len(_weights(agent, stack["lb"])) == 3, 10, "the stack on the agent")
        assert time.monotonic() - started < 8  # four writes, each applied via NOTIFY
        assert agent.api.url == b.url
        _active(admin_a, stack["lb"])
        # Kill b while the agent long-polls it; write on a (acknowledged: it must arrive).
        time.sleep(0.5)  # inside the long poll
        b.kill()
        members = _ok(admin_a.get(f"/v2/lbaas/pools/{stack['pool']}/members"))["members"]
        target = next(m for m in members if m["address"] == "10.1.0.2")
        _ok(
            admin_a.put(
                f"/v2/lbaas/pools/{stack['pool']}/members/{target['id']}",
                json={"member": {"weight": 0}},
            )
        )
        wait_for(lambda: _weights(agent, stack["lb"]).get("10.1.0.2") == 0, 20, "the drain")
        assert agent.api.url == a.url  # failed over
        _active(admin_a, stack["lb"])  # through a
        # And it carries on through a: a new load balancer arrives and goes ACTIVE.
        second = _stack(admin_a, members=1)
        wait_for(lambda: second["lb"] in agent.desired.lbs, 20, "the second stack")
        _active(admin_a, second["lb"])
        assert not agent.errors
    finally:
        agent.stop(withdraw=False)
        thread.join(30)
        agent.close()
        admin_a.close()
        admin_b.close()
