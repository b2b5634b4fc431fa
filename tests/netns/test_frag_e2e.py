"""Fragmented UDP through the L4 tier, end to end: the client's kernel fragments datagrams
larger than its link, the balancer sends every fragment of a datagram to one backend (the
first fragment's), the backend's kernel reassembles and answers directly (DSR)."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from shoal import netns
from shoal.dataplane.config import parse_config
from shoal.lab.l4mini import VIP4, VIP6, L4MiniLab

pytestmark = pytest.mark.netns
PORT = 5353
CLIENT_MTU = 1400  # fragments + the 20/40-byte tunnel header fit the lab's 1500-byte links


@pytest.fixture(scope="module")
def lab() -> Iterator[L4MiniLab]:
    with L4MiniLab(prefix=f"fr{os.getpid()}") as lab:
        for host in lab.backend_hosts:
            for vip in (VIP4, VIP6):
                lab.topo.python(
                    host.ns,
                    f"udp-{host.name}-{vip}",
                    "shoal.lab.servers",
                    "udp",
                    "--name",
                    host.name,
                    "--port",
                    str(PORT),
                    "--bind",
                    vip,
                )
        lab.topo.run(lab.hosts["client"].ns, "ip", "link", "set", "eth0", "mtu", str(CLIENT_MTU))
        for host in lab.backend_hosts:
            wait_udp(host.ns, VIP4)
            wait_udp(host.ns, VIP6)
        yield lab


def wait_udp(ns: str, vip: str, timeout: float = 120.0) -> None:
    """Until the backend's UDP server answers on its own VIP address (a slow machine takes a
    while to start Python)."""
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    deadline = time.monotonic() + timeout
    with netns.entered(ns), socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        while time.monotonic() < deadline:
            s.sendto(b"ping", (vip, PORT))
            try:
                s.recv(100)
                return
            except TimeoutError:
                continue
    raise AssertionError(f"no UDP server on {vip}:{PORT} in {ns} after {timeout}s")


def config(lab: L4MiniLab, family: int):
    backends = [{"address": h.ip4 if family == 4 else h.ip6} for h in lab.backend_hosts]
    vip = {
        "address": VIP4 if family == 4 else VIP6,
        "port": PORT,
        "protocol": "udp",
        "backends": backends,
    }
    return parse_config({"vips": [vip]})


def ask(vip: str, size: int, sport: int) -> str:
    """One datagram of size bytes from sport; the answer ("b2 4000"), retried while the
    backends' servers start (bounded: 20 tries, 1 s each)."""
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", sport))
        s.settimeout(1.0)
        for _ in range(20):
            s.sendto(b"f" * size, (vip, PORT))
            try:
                return s.recv(100).decode()
            except TimeoutError:
                continue
    return ""


@pytest.mark.parametrize("family", [4, 6])
def test_fragmented_datagrams_reach_one_backend_each(lab: L4MiniLab, family: int) -> None:
    assert lab.lb is not None
    lab.lb.apply(config(lab, family))
    vip = VIP4 if family == 4 else VIP6
    before = lab.lb.counters()
    answers = Counter()
    start = time.monotonic()
    with netns.entered(lab.hosts["client"].ns):
        for sport in range(31000, 31030):
            answer = ask(vip, 4000, sport)
            name, _, size = answer.partition(" ")
            assert size == "4000", answer  # reassembled whole on the backend
            answers[name] += 1
    assert time.monotonic() - start < 120
    assert set(answers) == {"b1", "b2", "b3"}  # datagrams spread; fragments did not
    after = lab.lb.counters()
    assert after["frag_first"] - before["frag_first"] >= 30
    assert after["frag_follow"] - before["frag_follow"] >= 60  # 4000 bytes: 3 fragments
