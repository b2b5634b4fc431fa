"""The processes of `shoal bench scale`: a controller on a throwaway PostgreSQL and L4 agents,
each its own process started as an operator would (`shoal controller serve`, `shoal agent l4`),
so their CPU time is read from /proc per process. Each agent owns a network namespace with a
veth pair and attaches its real XDP data plane there; it reaches the controller on loopback
through a byte-counting relay of its own (bench.relay). Everything is removed on exit."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from shoal import netns
from shoal.bench.relay import Relay
from shoal.dataplane.balancer import Balancer
from shoal.errors import ShoalError
from shoal.procs import cpu_seconds

__all__ = [
    "ADMIN",
    "VIP_CIDR",
    "Controller",
    "L4Node",
    "fleet",
    "map_memory",
    "start_agent",
]

ADMIN = "scale-bench-admin"
VIP_CIDR = "10.96.0.0/16"  # room for 65,000 VIPs; only ever inside the agents' namespaces


def _bpftool(*args: str) -> Any:
    out = subprocess.run(
        ["bpftool", *args, "-j"], capture_output=True, text=True, timeout=60, check=False
    )
    if out.returncode != 0:
        raise ShoalError(f"bpftool {' '.join(args)}: {out.stderr.strip()[:200]}")
    return json.loads(out.stdout or "null")


def map_memory(instance: str) -> int:
    """Kernel memory of a data plane's maps: the `bytes_memlock` bpftool shows (the fdinfo
    memlock) of each pinned map and of each map held in a pinned map of maps (the per-VIP
    Maglev tables, which are not pinned themselves)."""
    ids: set[int] = set()
    for path in sorted(Balancer.pin_dir(instance).iterdir()):
        try:
            info = _bpftool("map", "show", "pinned", str(path))
        except ShoalError:
            continue  # a pinned program or link, not a map
        ids.add(int(info["id"]))
        if info["type"] in ("array_of_maps", "hash_of_maps"):
            for entry in _bpftool("map", "dump", "pinned", str(path)) or []:
                value = entry.get("value")
                if isinstance(value, list):  # the inner map's id, little-endian bytes
                    ids.add(int.from_bytes(bytes(int(b, 16) for b in value), "little"))
                elif isinstance(value, int):
                    ids.add(value)
    memlock = {int(m["id"]): int(m.get("bytes_memlock", 0)) for m in _bpftool("map", "show")}
    return sum(memlock.get(i, 0) for i in ids)


@dataclass
class Controller:
    pid: int
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return cpu_seconds(self.pid)


@dataclass
class L4Node:
    name: str
    ns: str
    instance: str
    relay: Relay
    log: Path
    pid: int = 0
    started: float = 0.0  # time.monotonic() of the spawn

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def bytes_down(self) -> int:
        return self.relay.counts()[0]


@dataclass
class Fleet:
    """controllers[0] serves the tenants' API (and the bench's watcher); the agents talk to
    the last one: with two, the tenant side and the agents' side are separate processes on
    one PostgreSQL, as behind an operator's HTTP balancer, and cross-process wake-ups carry
    every change."""

    controllers: list[Controller]
    nodes: list[L4Node]
    dir: Path
    node_ids: dict[str, str] = field(default_factory=dict)  # name -> id once registered

    @property
    def controller(self) -> Controller:
        return self.controllers[0]

    def controller_cpu(self) -> float:
        """CPU seconds of every controller process together."""
        return sum(c.cpu() for c in self.controllers)

    def admin(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(
            base_url=self.controller.url, headers={"X-Auth-Token": ADMIN}, timeout=timeout
        )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(cmd: list[str], log: Path) -> int:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    return proc.pid


def _stop(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after timeout; reaps it (our own child)."""
    if pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _wait_http(url: str, pid: int, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            raise ShoalError(f"the controller exited; see {log}: {log.read_text()[-500:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthcheck", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise ShoalError(f"the controller did not answer within {timeout:.0f} s (see {log})")


def _start_controller(db_url: str, work: Path, index: int = 1) -> Controller:
    port = _free_port()
    cfg = work / f"controller-{index}.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "database_url": db_url,
                "state_dir": str(work),
                "key_dir": str(work / "keys"),
                "listen": f"127.0.0.1:{port}",
                "vip_pools": [{"name": "scale", "cidr": VIP_CIDR}],
                # Nothing may turn ERROR or drop a node because the machine is slow: the bench
                # measures how long applying takes, however long that is.
                "pending_timeout": 3600.0,
                "node_dead_after": 3600.0,
                "cluster_seed": "scale-bench",
                "bootstrap_token": ADMIN,
                # A whole-state report of 10,000 load balancers' digests and counters.
                "max_agent_body_bytes": 256 << 20,
            }
        )
    )
    log = work / f"controller-{index}.log"
    cmd = [sys.executable, "-m", "shoal.cli.main", "controller", "serve", "--config", str(cfg)]
    pid = _spawn(cmd, log)
    ctl = Controller(pid, port, log)
    try:
        _wait_http(ctl.url, pid, log)
    except BaseException:
        _stop(pid)
        raise
    return ctl


def _make_ns(name: str) -> None:
    netns.delete(name)
    netns.add(name)
    batch = "\n".join(
        [
            "link add up0 type veth peer name up1",
            "link set up0 up",
            "link set up1 up",
            "link set lo up",
        ]
    )
    netns.run(["ip", "-batch", "-"], name, input_text=batch)


def _enroll(client: httpx.Client, name: str, path: Path) -> None:
    r = client.post("/v2/shoal/enrollments", json={"enrollment": {"name": name, "role": "l4"}})
    r.raise_for_status()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(r.json()["enrollment"]["credential"])


def start_agent(fl: Fleet, node: L4Node, agent_cfg: dict[str, Any]) -> None:
    """Spawns the node's agent (its data plane comes up on the pins of its instance)."""
    node_dir = fl.dir / node.name
    node_dir.mkdir(exist_ok=True)
    credential = node_dir / "credential"
    if not credential.exists():
        with fl.admin() as c:
            _enroll(c, node.name, credential)
    cfg = node_dir / "agent.yaml"
    # netns in the file, not --netns: the process stays in the host's namespace and reaches
    # the controller (its relay) on loopback; only the data plane lives in the namespace.
    cfg.write_text(yaml.safe_dump({**agent_cfg, "instance": node.instance, "netns": node.ns}))
    cmd = [
        sys.executable, "-m", "shoal.cli.main", "agent", "l4", "--name", node.name,
        "--interface", "up0", "--controller", node.relay.url,
        "--credential-file", str(credential), "--config", str(cfg),
        "--state-dir", str(node_dir), "--serve-prefix", VIP_CIDR,
    ]  # fmt: skip
    node.started = time.monotonic()
    node.pid = _spawn(cmd, node.log)


def stop_agent(node: L4Node) -> None:
    _stop(node.pid)
    node.pid = 0


@contextlib.contextmanager
def fleet(db_url: str, work: Path, agents: int = 2, controllers: int = 1) -> Iterator[Fleet]:
    """`controllers` controllers on db_url (see Fleet) and `agents` L4 nodes (namespaces and
    relays made, agents not started yet: start_agent)."""
    tag = f"{os.getpid()}"
    nodes: list[L4Node] = []
    ctls: list[Controller] = []
    try:
        for index in range(1, controllers + 1):  # one after another: the first makes the keys
            ctls.append(_start_controller(db_url, work, index))
        ctl = ctls[-1]
        for i in range(1, agents + 1):
            name = f"scale-l4-{i}"
            ns = f"shoal-scale-{tag}-{i}"
            _make_ns(ns)
            relay = Relay(("127.0.0.1", ctl.port))
            nodes.append(L4Node(name, ns, f"scale-{tag}-{i}", relay, work / f"{name}.log"))
        yield Fleet(ctls, nodes, work)
    finally:
        for node in nodes:
            stop_agent(node)
            node.relay.close()
            netns.delete(node.ns)
            Balancer.purge(node.instance)
        for started in ctls:
            _stop(started.pid)
