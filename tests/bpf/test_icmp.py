"""ICMP through the balancer: errors quoting a VIP flow reach the backend that owns the flow
(session cache, else Maglev on the quoted flow reversed), encapsulated like the flow; packets
too big once encapsulated are answered with frag-needed / packet-too-big, rate limited."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, IPerror, TCPerror, UDPerror
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPerror6, IPv6
from scapy.layers.l2 import Dot1Q, Ether

from shoal.dataplane import packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.testrun import XdpAction, run_xdp

from .harness import BACKENDS4, LB_MAC, VIP4, VIP6, Net, config, vip

pytestmark = pytest.mark.bpf
CLIENT4, CLIENT6 = "192.0.2.10", "2001:db8::10"
ROUTER4, ROUTER6 = "198.51.100.1", "2001:db8:ff::1"
CLIENT_MAC, TO_LB = "02:00:00:00:00:01", bytes.fromhex(LB_MAC.replace(":", ""))
E = Ether(src=CLIENT_MAC, dst=LB_MAC)


def send(lb: Balancer, net: Net, frame: bytes):
    return run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex)


def frag_needed(sport: int, mtu: int = 1400, client: str = CLIENT4) -> bytes:
    """What a router on the reply path sends: the backend's reply (VIP:80 -> client) quoted."""
    reply = IPerror(src=VIP4, dst=client, flags="DF") / TCPerror(sport=80, dport=sport, flags="A")
    return bytes(E / IP(src=ROUTER4, dst=VIP4) / ICMP(type=3, code=4, nexthopmtu=mtu) / reply)


def too_big6(sport: int, mtu: int = 1400) -> bytes:
    reply = IPerror6(src=VIP6, dst=CLIENT6) / TCPerror(sport=80, dport=sport, flags="A")
    return bytes(E / IPv6(src=ROUTER6, dst=VIP6) / ICMPv6PacketTooBig(mtu=mtu) / reply)


def inner(out: bytes) -> bytes:
    eth = Ether(out)
    outer = eth[IP] if eth.type == 0x0800 else eth[IPv6]
    return bytes(outer.payload)


def test_frag_needed_follows_the_session(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip()))
    res = send(lb, net, packets.tcp_frame(CLIENT4, VIP4, 40000, 80, dmac=TO_LB))
    owner = Ether(res.frame)[IP].dst
    # Move the flow's Maglev pick elsewhere: only the session entry knows the owner now.
    others = [a for a in list(BACKENDS4)[:4] if a != owner]
    lb.apply(config(vip(backends=[{"address": owner}] + [{"address": a} for a in others])))
    before = lb.counters()
    for _ in range(3):
        icmp = frag_needed(40000)
        res = send(lb, net, icmp)
        assert res.action == XdpAction.TX
        eth = Ether(res.frame)
        assert eth[IP].dst == owner and eth[IP].proto == 4
        assert inner(res.frame)[: len(icmp) - 14] == icmp[14:]  # the error, untouched
    after = lb.counters()
    assert after["icmp_forwarded"] - before["icmp_forwarded"] == 3
    assert after["cache_hit"] - before["cache_hit"] == 3


def test_frag_needed_without_a_session_goes_where_maglev_puts_the_flow(
    lb: Balancer, net: Net
) -> None:
    lb.apply(config(vip(backends=5)))
    before = lb.counters()
    for sport in range(41000, 41030):
        res = send(lb, net, frag_needed(sport))
        assert res.action == XdpAction.TX
        assert Ether(res.frame)[IP].dst == lb.trace(CLIENT4, sport, VIP4, 80, "tcp").backend
    after = lb.counters()
    # An attacker's stream of errors creates no entries and is no new flow for flood mode.
    assert after["cache_insert"] == before["cache_insert"]
    assert after["new_flows"] == before["new_flows"]
    assert after["icmp_forwarded"] - before["icmp_forwarded"] == 30


def test_packet_too_big_v6_follows_the_flow(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(VIP6, family=6, backends=4)))
    for sport in (42000, 42001, 42002):
        res = send(lb, net, too_big6(sport))
        assert res.action == XdpAction.TX
        assert Ether(res.frame)[IPv6].dst == lb.trace(CLIENT6, sport, VIP6, 80, "tcp").backend


def test_errors_encapsulated_like_the_flow_gue(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(encap="gue")))
    flow = send(lb, net, packets.tcp_frame(CLIENT4, VIP4, 43000, 80, dmac=TO_LB))
    err = send(lb, net, frag_needed(43000))
    f, e = Ether(flow.frame)[IP], Ether(err.frame)[IP]
    assert e.proto == 17 and (e.dst, e.src) == (f.dst, f.src)  # same tunnel, same outer source
    assert e.payload.sport == f.payload.sport  # same GUE source port: same receive queue


def test_errors_that_quote_no_vip_flow_are_left_alone(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip()))
    cases = [
        # Quoting a packet another host sent: not ours to route.
        E
        / IP(src=ROUTER4, dst=VIP4)
        / ICMP(type=3, code=4)
        / IPerror(src="10.9.9.9", dst=CLIENT4)
        / TCPerror(sport=80, dport=1),
        # The VIP's address but a port it does not serve.
        E
        / IP(src=ROUTER4, dst=VIP4)
        / ICMP(type=3, code=4)
        / IPerror(src=VIP4, dst=CLIENT4)
        / TCPerror(sport=8080, dport=1),
        # UDP quoted, the VIP is TCP only.
        E
        / IP(src=ROUTER4, dst=VIP4)
        / ICMP(type=3, code=3)
        / IPerror(src=VIP4, dst=CLIENT4)
        / UDPerror(sport=80, dport=1),
        # Cut before the quoted ports.
        bytes(frag_needed(1))[: 14 + 20 + 8 + 20 + 2],
        # Echo request to the VIP: the node's kernel answers it (docs/dataplane.md).
        E / IP(src=CLIENT4, dst=VIP4) / ICMP(type=8),
    ]
    for case in cases:
        frame = bytes(case)
        res = send(lb, net, frame)
        assert res.action == XdpAction.PASS
        assert res.frame == frame
    assert lb.counters()["icmp_forwarded"] == 0


def big4(payload: int = 1460, *, df: bool = True, vlan: int | None = None) -> bytes:
    frame = packets.tcp_frame(
        CLIENT4, VIP4, 45000, 80, packets.TCP_ACK, b"x" * payload, dmac=TO_LB, vlan=vlan
    )
    if df:
        return frame
    eth = Ether(frame)
    eth[IP].flags = 0
    del eth[IP].chksum
    return bytes(eth)


def test_too_big_after_encapsulation_is_answered_with_frag_needed(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(), mtu=1500))
    frame = big4()
    res = send(lb, net, frame)
    assert res.action == XdpAction.TX
    eth = Ether(res.frame)
    assert (eth.dst, eth.src) == (CLIENT_MAC, LB_MAC)  # straight back where it came from
    ip = eth[IP]
    assert (ip.src, ip.dst, ip.proto) == (VIP4, CLIENT4, 1)
    icmp = ip[ICMP]
    assert (icmp.type, icmp.code, icmp.nexthopmtu) == (3, 4, 1500 - 20)
    for layer in (ip, icmp):  # both checksums as scapy computes them
        fresh = layer.copy()
        del fresh.chksum
        assert layer.__class__(bytes(fresh)).chksum == layer.chksum
    assert bytes(icmp.payload)[:64] == frame[14 : 14 + 64]  # the offending packet's head
    counters = lb.counters()
    assert counters["icmp_too_big"] == 1 and counters["drop_too_big"] == 0
    assert counters["tx"] == 0  # nothing went to a backend


def test_packet_too_big_v6_and_gue_overhead(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(VIP6, family=6, encap="gue"), mtu=1400))
    frame = packets.tcp_frame(CLIENT6, VIP6, 45000, 80, packets.TCP_ACK, b"x" * 1340, dmac=TO_LB)
    res = send(lb, net, frame)
    assert res.action == XdpAction.TX
    eth = Ether(res.frame)
    ip6 = eth[IPv6]
    assert (ip6.src, ip6.dst, ip6.nh) == (VIP6, CLIENT6, 58)
    ptb = ip6[ICMPv6PacketTooBig]
    assert ptb.mtu == 1400 - 40 - 8
    fresh = ip6.copy()
    del fresh[ICMPv6PacketTooBig].cksum
    assert IPv6(bytes(fresh))[ICMPv6PacketTooBig].cksum == ptb.cksum
    assert bytes(ptb.payload)[:128] == frame[14 : 14 + 128]


def test_too_big_reply_keeps_the_vlan_tag(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip()))
    res = send(lb, net, big4(vlan=42))
    assert res.action == XdpAction.TX
    eth = Ether(res.frame)
    assert eth[Dot1Q].vlan == 42 and eth[ICMP].type == 3


def test_too_big_replies_are_rate_limited(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(), icmp_too_big_rate=3))
    verdicts = [send(lb, net, big4()).action for _ in range(10)]
    assert verdicts == [XdpAction.TX] * 3 + [XdpAction.DROP] * 7
    counters = lb.counters()
    assert counters["icmp_too_big"] == 3 and counters["drop_too_big"] == 7


def test_too_big_without_df_and_errors_themselves_are_dropped(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip()))
    assert send(lb, net, big4(df=False)).action == XdpAction.DROP  # a router would fragment
    pad = b"p" * 1480
    err = bytes(
        E
        / IP(src=ROUTER4, dst=VIP4)
        / ICMP(type=3, code=4)
        / IPerror(src=VIP4, dst=CLIENT4)
        / TCPerror(sport=80, dport=1)
        / pad
    )
    assert send(lb, net, err).action == XdpAction.DROP  # no error about an error
    counters = lb.counters()
    assert counters["drop_too_big"] == 2 and counters["icmp_too_big"] == 0


def test_fitting_packets_are_not_answered(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(), mtu=1500))
    res = send(lb, net, big4(1440))  # 1480 + 20 = 1500: fits exactly
    assert res.action == XdpAction.TX and Ether(res.frame)[IP].proto == 4
    assert TCP in Ether(res.frame)
