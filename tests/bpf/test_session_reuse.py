"""A new connection that reuses an older one's 5-tuple goes where a fresh hash sends it, even
when its packets run on another CPU than its SYN (bpf/lb/session.h, shoal_abi.h: the table
generation in each entry and the shared SYN marks). The older connection's entry lives in
the other CPU's stripe; without the marks its later packets would follow that entry to the
older connection's backend, which has no socket for them and answers RST (found in the lab:
2 of 50 new connections reset after a pool change). Long-lived flows keep their backend.

Frames through BPF_PROG_TEST_RUN (repeat=1), each on a chosen CPU."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from shoal.dataplane import abi, packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.sessions import superseded

from .harness import Net, config, vip
from .test_session_table import SETTINGS, A, B, cpu, key, send

pytestmark = pytest.mark.bpf


@contextlib.contextmanager
def on_cpu(n: int) -> Iterator[None]:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {n})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@pytest.fixture
def other(lb: Balancer) -> int:
    """Another CPU this test may run on (it has its own stripe)."""
    for n in range(lb.maps.sessions.geom().stripes):
        if n == cpu():
            continue
        try:
            with on_cpu(n):
                return n
        except OSError:  # not in this process's cpuset
            continue
    pytest.skip("one usable CPU: no other stripe")


def only_a(lb: Balancer) -> None:
    lb.apply(config(vip(backends=[{"address": A}]), **SETTINGS))


def a_drained(lb: Balancer) -> None:
    lb.apply(config(vip(backends=[{"address": A, "weight": 0}, {"address": B}]), **SETTINGS))


def test_a_reused_tuple_whose_packets_change_cpu_takes_the_fresh_pick(
    lb: Balancer, net: Net, other: int
) -> None:
    sport = 43210
    only_a(lb)
    with on_cpu(other):  # the older connection ran on the other CPU
        assert send(lb, net, sport, packets.TCP_SYN) == A
        assert send(lb, net, sport, packets.TCP_ACK) == A
    a_drained(lb)  # B is every new flow's pick now
    assert send(lb, net, sport, packets.TCP_SYN) == B  # the new connection's SYN, here
    reused = lb.counters()["cache_reused"]
    # Python's reading of the maps (flow trace) agrees: the other CPU's entry is superseded.
    (stale,) = [p.val for p in lb.maps.sessions.find(key(sport)) if p.cpu == other]
    mark = lb.maps.sessions.syn_mark(key(sport))
    backend = lb.backends()[int(stale.backend_id)]
    assert mark is not None and superseded(6, stale, backend, mark)
    with on_cpu(other):
        assert send(lb, net, sport, packets.TCP_ACK) == B  # its ACK, there
        # The older entry is gone: the flow misses there as any flow new to that CPU (B,
        # with A as the previous owner: second chance, which writes no entry).
        assert other not in [p.cpu for p in lb.maps.sessions.find(key(sport))]
        assert send(lb, net, sport, packets.TCP_ACK) == B
    assert lb.counters()["cache_reused"] == reused + 1


def test_a_long_lived_flow_keeps_its_backend_on_every_cpu(
    lb: Balancer, net: Net, other: int
) -> None:
    """No newer SYN of its own: its entries, written before the change, are honoured."""
    sport = 43220
    only_a(lb)
    assert send(lb, net, sport, packets.TCP_SYN) == A
    with on_cpu(other):
        assert send(lb, net, sport, packets.TCP_ACK) == A  # an entry in both stripes
    a_drained(lb)
    # Another flow's SYNs, in every bucket but this flow's: no effect on it.
    for p in range(30000, 30200):
        send(lb, net, p, packets.TCP_SYN)
    assert send(lb, net, sport, packets.TCP_ACK) == A
    with on_cpu(other):
        assert send(lb, net, sport, packets.TCP_ACK) == A
    assert lb.counters()["cache_reused"] == 0
    for placed in lb.maps.sessions.find(key(sport)):
        backend = lb.backends()[int(placed.val.backend_id)]
        mark = lb.maps.sessions.syn_mark(key(sport))
        assert not superseded(6, placed.val, backend, mark)


def test_an_entry_of_the_current_table_is_trusted_without_the_marks(
    lb: Balancer, net: Net, other: int
) -> None:
    """Written under the VIP's table generation, an entry names a fresh hash's own pick: the
    marks are not read (the common case costs nothing), and a newer SYN changes nothing."""
    sport = 43230
    a_drained(lb)
    with on_cpu(other):
        assert send(lb, net, sport, packets.TCP_SYN) == B
    assert send(lb, net, sport, packets.TCP_SYN) == B  # a newer SYN of the flow, here
    with on_cpu(other):
        assert send(lb, net, sport, packets.TCP_ACK) == B
    assert lb.counters()["cache_reused"] == 0


def test_each_table_change_moves_the_generation_of_every_backend_of_its_vip(
    lb: Balancer,
) -> None:
    only_a(lb)
    gens = {int(b.table_gen) for b in lb.backends().values()}
    a_drained(lb)  # a new table
    after = {int(b.table_gen) for b in lb.backends().values()}
    assert len(gens) == 1 and len(after) == 1 and after != gens
    a_drained(lb)  # the same config: no new table, the same generation
    assert {int(b.table_gen) for b in lb.backends().values()} == after


def test_the_generation_bits_leave_the_entry_time_alone(lb: Balancer, net: Net) -> None:
    a_drained(lb)
    send(lb, net, 43240, packets.TCP_SYN)
    val = lb.session(key(43240))
    assert val is not None
    gen = (int(val.touched) >> abi.FLOW_GEN_SHIFT) & abi.FLOW_GEN_BITS
    be = lb.backends()[int(val.backend_id)]
    assert gen == int(be.table_gen) & abi.FLOW_GEN_BITS
    assert not int(val.touched) & abi.FLOW_CLOSING
