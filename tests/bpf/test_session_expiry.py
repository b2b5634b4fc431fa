"""Session entries that end: idle TCP entries expire, a FIN or an RST shortens them, and a new
connection never follows an old one's entry. Frames through BPF_PROG_TEST_RUN (repeat=1).

Each test pins one flow to backend A with a SYN, then drains A (weight 0) so that the current
Maglev pick for every flow is B: a packet reaching A proves the entry was used, B that it was
not."""

from __future__ import annotations

import time

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from shoal.dataplane import abi, flowhash, packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.testrun import XdpAction, run_xdp
from shoal.errors import ConfigError

from .harness import LB_MAC, VIP4, Net, config, vip

pytestmark = pytest.mark.bpf
CLIENT = "192.0.2.77"
TO_LB = bytes.fromhex(LB_MAC.replace(":", ""))
A, B = "10.1.0.1", "10.1.0.2"


def send(lb: Balancer, net: Net, sport: int, flags: int) -> str:
    frame = packets.tcp_frame(CLIENT, VIP4, sport, 80, flags, b"x", dmac=TO_LB)
    res = run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex)
    assert res.action == XdpAction.TX
    return str(Ether(res.frame)[IP].dst)


def pinned_then_drained(lb: Balancer, net: Net, sports: list[int], **settings: object) -> None:
    """Flows on A, then A drained: B is every flow's current pick."""
    lb.apply(config(vip(backends=[{"address": A}]), **settings))
    for p in sports:
        assert send(lb, net, p, packets.TCP_SYN) == A
    drained = [{"address": A, "weight": 0}, {"address": B}]
    lb.apply(config(vip(backends=drained), **settings))


def closing(lb: Balancer, sport: int) -> bool:
    val = lb.session(flowhash.flow_key(CLIENT, VIP4, sport, 80, "tcp"))
    assert val is not None
    return bool(val.touched & abi.FLOW_CLOSING)


@pytest.mark.wallclock  # the entry must still be live 0.3 s after its insert
def test_idle_tcp_entry_expires_and_the_flow_takes_the_current_pick(lb: Balancer, net: Net) -> None:
    pinned_then_drained(lb, net, [41000], tcp_timeout=0.3)
    assert send(lb, net, 41000, packets.TCP_ACK) == A  # live entry: the drained backend
    time.sleep(0.5)
    assert lb.trace(CLIENT, 41000, VIP4, 80, "tcp").via == "maglev"
    assert send(lb, net, 41000, packets.TCP_ACK) == B  # expired: hashed afresh
    assert lb.counters()["cache_expired"] == 1


@pytest.mark.wallclock  # packets 50 ms apart against a 0.3 s timeout
def test_a_busy_flow_outlives_its_idle_timeout(lb: Balancer, net: Net) -> None:
    pinned_then_drained(lb, net, [41001], tcp_timeout=0.3)
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        assert send(lb, net, 41001, packets.TCP_ACK) == A
        time.sleep(0.05)
    assert lb.counters()["cache_expired"] == 0


def test_hits_do_not_rewrite_the_entry_on_every_packet(lb: Balancer, net: Net) -> None:
    pinned_then_drained(lb, net, [41002], tcp_timeout=600)
    key = flowhash.flow_key(CLIENT, VIP4, 41002, 80, "tcp")
    before = lb.session(key)
    assert before is not None
    for _ in range(20):
        assert send(lb, net, 41002, packets.TCP_ACK) == A
    after = lb.session(key)
    assert after is not None and after.touched == before.touched  # within the granule


@pytest.mark.parametrize("flag", [packets.TCP_FIN | packets.TCP_ACK, packets.TCP_RST])
def test_fin_or_rst_shortens_the_entry(lb: Balancer, net: Net, flag: int) -> None:
    pinned_then_drained(lb, net, [41010, 41011], tcp_timeout=600, tcp_closing_timeout=0.3)
    assert send(lb, net, 41010, flag) == A  # the FIN/RST itself still reaches its backend
    assert closing(lb, 41010) and not closing(lb, 41011)
    assert lb.counters()["cache_closing"] == 1
    time.sleep(0.5)
    assert send(lb, net, 41010, packets.TCP_ACK) == B  # closed and silent: expired
    assert send(lb, net, 41011, packets.TCP_ACK) == A  # the open flow keeps its backend


def test_a_half_closed_flow_that_keeps_sending_keeps_its_backend(lb: Balancer, net: Net) -> None:
    # The client sent its FIN, the server still streams (the L4 tier sees the client's ACKs).
    pinned_then_drained(lb, net, [41020], tcp_timeout=600, tcp_closing_timeout=0.3)
    assert send(lb, net, 41020, packets.TCP_FIN | packets.TCP_ACK) == A
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        assert send(lb, net, 41020, packets.TCP_ACK) == A
        time.sleep(0.05)


def test_syn_after_fin_goes_to_the_current_pick(lb: Balancer, net: Net) -> None:
    pinned_then_drained(lb, net, [41030], tcp_timeout=600, tcp_closing_timeout=0.3)
    assert send(lb, net, 41030, packets.TCP_FIN | packets.TCP_ACK) == A
    # The client reuses the 5-tuple at once: the new connection is placed afresh ...
    assert send(lb, net, 41030, packets.TCP_SYN) == B
    # ... and its entry is a fresh, open one that outlives the closing timeout.
    assert not closing(lb, 41030)
    time.sleep(0.5)
    assert send(lb, net, 41030, packets.TCP_ACK) == B


def test_a_fin_that_misses_the_cache_writes_a_closing_entry(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(backends=[{"address": A}, {"address": B}]), tcp_closing_timeout=0.3))
    picked = send(lb, net, 41040, packets.TCP_FIN | packets.TCP_ACK)
    assert closing(lb, 41040)
    assert send(lb, net, 41040, packets.TCP_ACK) == picked


def test_timeouts_are_validated() -> None:
    with pytest.raises(ConfigError, match="tcp_closing_timeout"):
        config(tcp_closing_timeout=-1)
    with pytest.raises(ConfigError, match="tcp_timeout"):
        config(tcp_timeout=0)


def test_a_syn_of_a_cached_flow_refreshes_its_entry_in_place(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(backends=[{"address": A}, {"address": B}]), tcp_closing_timeout=0.3))
    key = flowhash.flow_key(CLIENT, VIP4, 41050, 80, "tcp")
    picked = send(lb, net, 41050, packets.TCP_SYN)
    assert send(lb, net, 41050, packets.TCP_FIN | packets.TCP_ACK) == picked
    first = lb.session(key)
    assert first is not None and first.touched & abi.FLOW_CLOSING
    aged = abi.FlowVal(first.backend_id, first.backend_gen, (first.touched & ~abi.FLOW_CLOSING) - 5)
    lb.maps.sessions.set(key, aged)
    inserts = lb.counters()["cache_insert"]
    # The 5-tuple is reused and hashes to the same backend: the entry is renewed, open again.
    assert send(lb, net, 41050, packets.TCP_SYN) == picked
    val = lb.session(key)
    assert val is not None and not closing(lb, 41050)
    assert (val.backend_id, val.backend_gen) == (first.backend_id, first.backend_gen)
    assert val.touched > aged.touched
    assert lb.counters()["cache_insert"] == inserts + 1
    time.sleep(0.5)  # past the closing timeout: the open entry still holds
    assert send(lb, net, 41050, packets.TCP_ACK) == picked


def test_a_syn_never_keeps_an_entry_of_another_generation(lb: Balancer, net: Net) -> None:
    """An entry naming the fresh pick's backend id but an older generation (the slot was
    reused) is rewritten whole, not refreshed: the next packet must see a valid entry."""
    lb.apply(config(vip(backends=[{"address": A}, {"address": B}])))
    key = flowhash.flow_key(CLIENT, VIP4, 41060, 80, "tcp")
    picked = send(lb, net, 41060, packets.TCP_SYN)
    val = lb.session(key)
    assert val is not None
    lb.maps.sessions.set(key, abi.FlowVal(val.backend_id, val.backend_gen + 1, val.touched))
    assert send(lb, net, 41060, packets.TCP_SYN) == picked
    fresh = lb.session(key)
    assert fresh is not None and fresh.backend_gen == val.backend_gen
    hits = lb.counters()["cache_hit"]
    assert send(lb, net, 41060, packets.TCP_ACK) == picked
    assert lb.counters()["cache_hit"] == hits + 1
