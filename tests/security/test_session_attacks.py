"""The session cache against a client that reuses or forges 5-tuples (issue 12, item 3), frame by
frame through BPF_PROG_TEST_RUN in a private namespace:

- a reused 5-tuple whose SYN went to another L4 node must not follow the old connection's
  entry to the old backend (that backend answers RST);
- a flood of forged RSTs for unknown flows must not write entries (which would evict live ones);
- a forged RST for a live flow must not move it while the real client keeps sending;
- forged SYNs from everywhere (each writes a SYN mark) must not move a live flow."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from shoal.dataplane import packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.testrun import XdpAction, run_xdp
from shoal.lab.sandbox import sandbox
from tests.bpf.harness import LB_MAC, VIP4, Net, config, vip

pytestmark = pytest.mark.bpf
CLIENT = "192.0.2.88"
TO_LB = bytes.fromhex(LB_MAC.replace(":", ""))
A, B = "10.1.0.1", "10.1.0.2"


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})  # one CPU: one LRU list, predictable
    try:
        with sandbox("secsess") as box:
            yield Net(box.ns, box.ifindex, box.lb_mac)
    finally:
        os.sched_setaffinity(0, before)


@pytest.fixture
def lb(net: Net) -> Iterator[Balancer]:
    with Balancer.load(
        pin=False, session_cache_size=8192, max_vips=64, max_backends=1024
    ) as balancer:
        yield balancer


def send(lb: Balancer, net: Net, sport: int, flags: int, src: str = CLIENT) -> str:
    frame = packets.tcp_frame(src, VIP4, sport, 80, flags, b"x", dmac=TO_LB)
    res = run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex)
    assert res.action == XdpAction.TX
    return str(Ether(res.frame)[IP].dst)


def drain_a(lb: Balancer, **settings: object) -> None:
    lb.apply(config(vip(backends=[{"address": A, "weight": 0}, {"address": B}]), **settings))


def test_reused_tuple_after_close_takes_the_current_pick(lb: Balancer, net: Net) -> None:
    settings = {"tcp_closing_timeout": 0.3}
    lb.apply(config(vip(backends=[{"address": A}]), **settings))
    assert send(lb, net, 42000, packets.TCP_SYN) == A
    drain_a(lb, **settings)
    assert send(lb, net, 42000, packets.TCP_FIN | packets.TCP_ACK) == A  # old connection ends
    time.sleep(0.5)
    # A new connection on the same 5-tuple: its SYN reached another L4 node (same Maglev
    # table: B); this node sees its first ACK and must agree.
    assert send(lb, net, 42000, packets.TCP_ACK) == B


def test_forged_rsts_for_unknown_flows_write_no_entries(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(backends=2)))
    live = {p: send(lb, net, p, packets.TCP_SYN) for p in range(43000, 43050)}
    inserts = lb.counters()["cache_insert"]
    for i in range(2000):
        send(lb, net, 1024 + i, packets.TCP_RST, src=f"198.51.{i // 250}.{i % 250 + 1}")
    assert lb.counters()["cache_insert"] == inserts
    assert sum(1 for _ in lb.maps.sessions.items()) == len(live)
    for p, b in live.items():
        assert lb.trace(CLIENT, p, VIP4, 80, "tcp").via == "session"
        assert send(lb, net, p, packets.TCP_ACK) == b


def test_a_forged_rst_does_not_move_a_flow_that_keeps_sending(lb: Balancer, net: Net) -> None:
    settings = {"tcp_closing_timeout": 0.3}
    lb.apply(config(vip(backends=[{"address": A}]), **settings))
    assert send(lb, net, 44000, packets.TCP_SYN) == A
    drain_a(lb, **settings)
    send(lb, net, 44000, packets.TCP_RST)  # the attacker guessed the 5-tuple
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert send(lb, net, 44000, packets.TCP_ACK) == A  # the real client, still talking
        time.sleep(0.05)


def test_forged_syns_from_everywhere_never_move_a_flow_the_cache_keeps(net: Net) -> None:
    """The SYN marks are shared and anyone's SYN writes one: 20,000 forged SYNs from as many
    sources overwrite buckets at random, yet a live flow whose entry predates its VIP's last
    table change (so it is checked against the marks) keeps its backend. A mark counts only
    for a SYN of the very same flow (its 32-bit tag under the table's secret seed). (A cache
    large enough that the forged flows' own entries evict nothing: eviction is another test.)"""
    with Balancer.load(pin=False, session_cache_size=1 << 20) as lb:
        lb.apply(config(vip(backends=[{"address": A}])))
        sport = 45000
        assert send(lb, net, sport, packets.TCP_SYN) == A
        drain_a(lb)  # the flow's entry is now of an older table generation
        for i in range(20_000):
            src = f"198.18.{(i >> 8) & 255}.{i & 255}"
            send(lb, net, 1024 + i % 60000, packets.TCP_SYN, src=src)
        assert send(lb, net, sport, packets.TCP_ACK) == A
        assert lb.counters()["cache_reused"] == 0
