"""A new connection that reuses an older one's 5-tuple after a pool change, its SYN sent from
one CPU and its request from the other, is answered by the fresh pick, never reset.

In the lab XDP on an L4 node runs on the CPU the client's packet was sent from (veth), so a
client thread that moves between CPUs spreads one connection's packets over two session
stripes. Before the table generations and SYN marks (docs/dataplane.md, "A reused
5-tuple"), the request met the older connection's entry in the other CPU's stripe and went to
the old backend, which had no socket for it and reset it (2 of 50 new connections in the
agent-restart test of one lab run)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from collections.abc import Iterator

import pytest

from shoal import netns
from shoal.dataplane.balancer import Balancer
from shoal.lab.lab import Lab

from .conftest import FIGURES
from .l4lb import L4Lb, create_l4_lb, l4_nodes

pytestmark = pytest.mark.netns
# Client source ports, each used by two connections: below the ephemeral range (32768 up),
# so no other test's connection (or its TIME_WAIT) holds one.
PORTS = range(20100, 20120)


@pytest.fixture(scope="module")
def lb(lab: Lab) -> Iterator[L4Lb]:
    made = create_l4_lb(lab, "reused-tuple", {"b1": 1})
    yield made
    made.delete()


@contextlib.contextmanager
def on_cpu(n: int) -> Iterator[None]:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {n})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def request(vip: str, sport: int, syn_cpu: int, data_cpu: int) -> str:
    """GET / on a connection from sport: connect() (the SYN) on syn_cpu, the request and the
    answer on data_cpu; closed with an RST (SO_LINGER 0), so the port is free again at once.
    Returns the answering backend, or the error's name."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.settimeout(3)
        sock.bind(("", sport))
        with on_cpu(syn_cpu):
            sock.connect((vip, 80))
        with on_cpu(data_cpu):
            sock.sendall(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return str(json.loads(data.split(b"\r\n\r\n", 1)[1])["backend"])
    except OSError as exc:  # the name, with errno: a reset is not a port in use
        return f"{type(exc).__name__}({exc.errno})"
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def reused(lab: Lab) -> int:
    total = 0
    for name in l4_nodes(lab):
        with Balancer.open(lab.state.hosts[name]["instance"]) as dp:
            total += dp.counters()["cache_reused"]
    return total


def test_a_reused_tuple_split_over_two_cpus_is_never_reset(lab: Lab, lb: L4Lb) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one CPU: every packet runs on it")
    syn_cpu, data_cpu = cpus[0], cpus[1]
    lb.set_members({"b1": 1})
    before = reused(lab)
    with netns.entered(lab.state.hosts["client"]["ns"]):
        old = {p: request(lb.vip, p, data_cpu, data_cpu) for p in PORTS}  # all on data_cpu
        assert set(old.values()) == {"b1"}, old
        lb.set_members({"b1": 0, "b2": 1, "b3": 1})  # every new flow's pick moves off b1
        new = {p: request(lb.vip, p, syn_cpu, data_cpu) for p in PORTS}
    answered = {p: b for p, b in new.items() if b in ("b2", "b3")}
    FIGURES["reused 5-tuple, SYN and request on two CPUs: answered by the fresh pick"] = (
        f"{len(answered)} of {len(new)}; older entries dropped: {reused(lab) - before}"
    )
    assert answered == new, new  # b1 would be the older entry's, an error a reset
    assert reused(lab) > before  # the older entries were met, and dropped
