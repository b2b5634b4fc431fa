"""The session table's own rules (bpf/lb/session.h): a set of 4 ways per CPU stripe, full keys,
the flow's own way, else an empty or expired one, else the least recently touched one. Frames
through BPF_PROG_TEST_RUN (repeat=1) on the test's one CPU; the ways' times are written from
Python so no rule depends on the machine's speed.

Flows are first pinned to backend A, then A is drained: B is every flow's current pick, so a
packet that reaches A proves its entry was used, B that it was not."""

from __future__ import annotations

import os

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from shoal.dataplane import abi, clock, flowhash, packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.sessions import set_index, tag_of
from shoal.dataplane.testrun import XdpAction, run_xdp

from .harness import LB_MAC, VIP4, Net, config, vip

pytestmark = pytest.mark.bpf
CLIENT = "192.0.2.88"
TO_LB = bytes.fromhex(LB_MAC.replace(":", ""))
A, B = "10.1.0.1", "10.1.0.2"
SETTINGS = {"tcp_timeout": 60.0, "tcp_closing_timeout": 1.0}


def cpu() -> int:
    return min(os.sched_getaffinity(0))  # conftest pins the tests to one CPU


def key(sport: int) -> abi.FlowKey:
    return flowhash.flow_key(CLIENT, VIP4, sport, 80, "tcp")


def send(lb: Balancer, net: Net, sport: int, flags: int) -> str:
    frame = packets.tcp_frame(CLIENT, VIP4, sport, 80, flags, b"x", dmac=TO_LB)
    res = run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex)
    assert res.action == XdpAction.TX
    return str(Ether(res.frame)[IP].dst)


def one_set(lb: Balancer, n: int, on_cpu: int) -> list[int]:
    """n client ports whose flows share one set of on_cpu's stripe."""
    g = lb.maps.sessions.geom()
    by_set: dict[int, list[int]] = {}
    for sport in range(20000, 65536):
        ports = by_set.setdefault(set_index(key(sport), g, on_cpu), [])
        ports.append(sport)
        if len(ports) == n:
            return ports
    raise AssertionError("no set took n flows")


def pinned_then_drained(lb: Balancer, net: Net, sports: list[int]) -> None:
    lb.apply(config(vip(backends=[{"address": A}]), **SETTINGS))
    for p in sports:
        assert send(lb, net, p, packets.TCP_SYN) == A
    lb.apply(config(vip(backends=[{"address": A, "weight": 0}, {"address": B}]), **SETTINGS))


def age(lb: Balancer, sport: int, seconds: float, *, closing: bool = False) -> None:
    """Sets the flow's entry to `seconds` idle (and closing) in the test CPU's stripe."""
    val = lb.session(key(sport))
    assert val is not None
    touched = clock.jiffies_now() - clock.to_jiffies(seconds)
    gen = val.touched & ~abi.FLOW_TIME & ~abi.FLOW_CLOSING
    val.touched = touched | gen | (abi.FLOW_CLOSING if closing else 0)
    lb.maps.sessions.set(key(sport), val, cpu=cpu())
    # Its SYN is as old (an entry is never older than its own flow's SYN).
    lb.maps.sessions.forget_syn(key(sport))


def held(lb: Balancer, sports: list[int]) -> set[int]:
    return {p for p in sports if lb.session(key(p)) is not None}


def test_a_full_set_evicts_its_oldest_way_not_a_busy_one(lb: Balancer, net: Net) -> None:
    *four, newcomer = one_set(lb, 5, cpu())
    pinned_then_drained(lb, net, four)
    for p, seconds in zip(four, (40, 30, 20, 10), strict=True):
        age(lb, p, seconds)
    # The oldest one is busy: its next packet refreshes it (it lagged by more than 1/16 of
    # tcp_timeout), so the second oldest becomes the least recently touched.
    busy, oldest = four[0], four[1]
    assert send(lb, net, busy, packets.TCP_ACK) == A
    assert send(lb, net, newcomer, packets.TCP_SYN) == B
    assert held(lb, [*four, newcomer]) == {*four, newcomer} - {oldest}
    assert send(lb, net, busy, packets.TCP_ACK) == A
    assert send(lb, net, oldest, packets.TCP_ACK) == B  # evicted: hashed afresh
    for p in four[2:]:
        assert send(lb, net, p, packets.TCP_ACK) == A


def test_two_flows_of_one_set_never_answer_for_each_other(lb: Balancer, net: Net) -> None:
    cached, stranger = one_set(lb, 2, cpu())
    pinned_then_drained(lb, net, [cached])
    misses = lb.counters()["cache_miss"]
    assert send(lb, net, stranger, packets.TCP_ACK) == B  # not the set-mate's A
    assert lb.counters()["cache_miss"] == misses + 1
    assert send(lb, net, cached, packets.TCP_ACK) == A
    # The stranger opens its own connection: both entries in the set, each with its backend.
    assert send(lb, net, stranger, packets.TCP_SYN) == B
    assert lb.trace(CLIENT, stranger, VIP4, 80, "tcp").session_backend == B
    assert lb.trace(CLIENT, cached, VIP4, 80, "tcp").session_backend == A


def test_an_expired_way_is_reused_first(lb: Balancer, net: Net) -> None:
    *four, newcomer = one_set(lb, 5, cpu())
    pinned_then_drained(lb, net, four)
    # Three open flows idle 30-50 s (tcp_timeout 60: alive) and one closing flow idle 5 s
    # (tcp_closing_timeout 1: expired), the most recently touched of the four.
    for p, seconds in zip(four[:3], (50, 40, 30), strict=True):
        age(lb, p, seconds)
    expired = four[3]
    age(lb, expired, 5, closing=True)
    assert send(lb, net, newcomer, packets.TCP_SYN) == B
    assert held(lb, [*four, newcomer]) == {*four[:3], newcomer}
    for p in four[:3]:
        assert send(lb, net, p, packets.TCP_ACK) == A


def test_trace_finds_an_entry_on_another_cpus_stripe(lb: Balancer, net: Net) -> None:
    stripes = lb.maps.sessions.geom().stripes
    if stripes < 2:
        pytest.skip("one possible CPU: no other stripe")
    other = (cpu() + 1) % stripes
    sport = 43210
    pinned_then_drained(lb, net, [sport])
    val = lb.session(key(sport))
    assert val is not None
    assert lb.maps.sessions.delete(key(sport))
    lb.maps.sessions.set(key(sport), val, cpu=other)
    assert [p.cpu for p in lb.maps.sessions.find(key(sport))] == [other]
    t = lb.trace(CLIENT, sport, VIP4, 80, "tcp")
    assert (t.via, t.backend) == ("session", A)
    # The trade-off (as Katran's per-CPU tables): a packet on this CPU does not see it.
    assert send(lb, net, sport, packets.TCP_ACK) == B


def test_each_table_hashes_sets_with_its_own_secret_seed(lb: Balancer) -> None:
    """A client that learns which of its flows share a set on one node (or before a restart
    with a new table) cannot aim them at another flow's set elsewhere: the set hash is seeded
    per table, not by the Maglev seed the controller distributes."""
    with Balancer.load(pin=False, session_cache_size=8192, max_vips=64, max_backends=1024) as two:
        first, second = lb.maps.sessions.geom(), two.maps.sessions.geom()
    assert first.seed and second.seed and first.seed != second.seed
    cfg = lb.maps.config.get(0)
    assert cfg is None or first.seed != cfg.hash_seed


def test_a_way_whose_tag_collides_never_answers_for_another_flow(lb: Balancer, net: Net) -> None:
    """The attacker's case: a way carrying exactly this flow's tag, in this flow's set, but
    another flow's key (a tag collision, or a client that found one) naming backend A. The
    flow's packet must miss and take the current pick, B; the way's own flow still gets A."""
    mine, other = one_set(lb, 2, cpu())
    pinned_then_drained(lb, net, [other])
    sessions = lb.maps.sessions
    g = sessions.geom()
    idx = set_index(key(other), g, cpu())
    s = sessions.sets.get(idx)
    assert s is not None
    w = next(i for i, way in enumerate(s.way) if bytes(way.key) == bytes(key(other)))
    s.tag[w] = tag_of(key(mine), g)  # the colliding tag, the other flow's key and backend
    sessions.sets.set(idx, s)
    misses = lb.counters()["cache_miss"]
    assert send(lb, net, mine, packets.TCP_ACK) == B
    assert lb.counters()["cache_miss"] == misses + 1
    s.tag[w] = tag_of(key(other), g)
    sessions.sets.set(idx, s)
    assert send(lb, net, other, packets.TCP_ACK) == A
