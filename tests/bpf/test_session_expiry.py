"""Session entries that end: idle TCP entries expire, a FIN or an RST shortens them, and a new
connection never follows an old one's entry. Frames through BPF_PROG_TEST_RUN (repeat=1).

Each test pins one flow to backend A with a SYN, then drains A (weight 0) so that the current
Maglev pick for every flow is B: a packet reaching A proves the entry was used, B that it was
not."""

from __future__ import annotations

import time
from collections.abc import Callable

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


def without_stalls(attempt: Callable[[float, int], bool]) -> None:
    """Runs attempt(timeout, sport) with a longer timeout (and a fresh flow) each time the machine
    stalled longer than the timeout allows, which makes a run prove nothing: an idle timeout is
    wall-clock behaviour, but the verdict must not depend on how loaded the test machine is."""
    for n, timeout in enumerate((0.3, 1.2, 4.8, 19.2)):  # the last for emulated kernels
        if attempt(timeout, 41100 + 10 * n):
            return
    pytest.fail("the machine stalled past every timeout tried")


def sends_every(
    lb: Balancer, net: Net, sport: int, flags: int, period: float, seconds: float
) -> tuple[set[str], float]:
    """Packets of one flow `period` apart for `seconds`: the backends reached, the longest gap."""
    reached, gap, last = set(), 0.0, time.monotonic()
    deadline = last + seconds
    while time.monotonic() < deadline:
        reached.add(send(lb, net, sport, flags))
        now = time.monotonic()
        gap, last = max(gap, now - last), now
        time.sleep(period)
    return reached, gap


def test_idle_tcp_entry_expires_and_the_flow_takes_the_current_pick(lb: Balancer, net: Net) -> None:
    def attempt(timeout: float, sport: int) -> bool:
        start, expired = time.monotonic(), lb.counters()["cache_expired"]
        pinned_then_drained(lb, net, [sport], tcp_timeout=timeout)
        live = send(lb, net, sport, packets.TCP_ACK)
        if time.monotonic() - start > timeout / 2:
            return False
        assert live == A  # live entry: the drained backend
        time.sleep(timeout + 0.2)
        assert lb.trace(CLIENT, sport, VIP4, 80, "tcp").via == "maglev"
        assert send(lb, net, sport, packets.TCP_ACK) == B  # expired: hashed afresh
        assert lb.counters()["cache_expired"] == expired + 1
        return True

    without_stalls(attempt)


def test_a_busy_flow_outlives_its_idle_timeout(lb: Balancer, net: Net) -> None:
    def attempt(timeout: float, sport: int) -> bool:
        expired = lb.counters()["cache_expired"]
        pinned_then_drained(lb, net, [sport], tcp_timeout=timeout)
        reached, gap = sends_every(lb, net, sport, packets.TCP_ACK, timeout / 6, timeout * 4)
        if gap > timeout / 2:
            return False
        assert reached == {A}
        assert lb.counters()["cache_expired"] == expired
        return True

    without_stalls(attempt)


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
    def attempt(timeout: float, sport: int) -> bool:
        pinned_then_drained(lb, net, [sport], tcp_timeout=600, tcp_closing_timeout=timeout)
        assert send(lb, net, sport, packets.TCP_FIN | packets.TCP_ACK) == A
        reached, gap = sends_every(lb, net, sport, packets.TCP_ACK, timeout / 6, timeout * 4)
        if gap > timeout / 2:
            return False
        assert reached == {A}
        return True

    without_stalls(attempt)


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
