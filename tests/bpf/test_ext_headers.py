"""IPv6 extension headers and QinQ: balanced on the real 5-tuple, the inner packet tunnelled
byte for byte; malformed L4 headers to a VIP dropped and counted, elsewhere untouched."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from shoal.dataplane.balancer import Balancer
from shoal.dataplane.testrun import XdpAction, run_xdp

from .harness import LB_MAC, VIP4, VIP6, Net, config, vip

pytestmark = pytest.mark.bpf
CLIENT4, CLIENT6 = "192.0.2.10", "2001:db8::10"
E = Ether(src="02:00:00:00:00:01", dst=LB_MAC)


def send(lb: Balancer, net: Net, frame: bytes):
    return run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex)


@pytest.mark.parametrize(
    "chain",
    [
        [IPv6ExtHdrHopByHop()],
        [IPv6ExtHdrDestOpt()],
        [IPv6ExtHdrRouting(segleft=0, addresses=["fd00::9"])],
        [IPv6ExtHdrHopByHop(), IPv6ExtHdrRouting(segleft=0), IPv6ExtHdrDestOpt()],
    ],
    ids=["hop-by-hop", "destination", "routing", "three"],
)
def test_extension_headers_are_balanced_on_the_real_ports(
    lb: Balancer, net: Net, chain: list
) -> None:
    lb.apply(config(vip(VIP6, family=6, backends=5)))
    for sport in range(7000, 7020):
        pkt = IPv6(src=CLIENT6, dst=VIP6)
        for h in chain:
            pkt = pkt / h.copy()
        frame = bytes(E / pkt / TCP(sport=sport, dport=80, flags="S"))
        res = send(lb, net, frame)
        assert res.action == XdpAction.TX
        out = Ether(res.frame)[IPv6]
        assert out.dst == lb.trace(CLIENT6, sport, VIP6, 80, "tcp").backend
        assert bytes(out.payload) == frame[14:]


def test_qinq_frames_are_balanced_and_keep_both_tags(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(backends=4)))
    for sport in range(8000, 8010):
        frame = bytes(
            E
            / Dot1AD(vlan=100)
            / Dot1Q(vlan=7)
            / IP(src=CLIENT4, dst=VIP4)
            / TCP(sport=sport, dport=80, flags="S")
        )
        res = send(lb, net, frame)
        assert res.action == XdpAction.TX
        eth = Ether(res.frame)
        assert eth[Dot1AD].vlan == 100 and eth[Dot1Q].vlan == 7
        outer = eth[IP]
        assert outer.proto == 4
        assert outer.dst == lb.trace(CLIENT4, sport, VIP4, 80, "tcp").backend
        assert bytes(outer.payload) == frame[22:]


MALFORMED = {
    "tcp data offset 0": IP(src=CLIENT4, dst=VIP4) / TCP(dport=80, dataofs=0),
    "tcp data offset 4": IP(src=CLIENT4, dst=VIP4) / TCP(dport=80, dataofs=4),
    "tcp options beyond the packet": IP(src=CLIENT4, dst=VIP4) / TCP(dport=80, dataofs=8),
    "tcp header cut by the ip length": IP(src=CLIENT4, dst=VIP4, len=20 + 12) / TCP(dport=80),
    "udp length beyond the packet": IP(src=CLIENT4, dst=VIP4) / UDP(dport=53, len=200) / b"x",
    "udp length 0": IP(src=CLIENT4, dst=VIP4) / UDP(dport=53, len=0) / b"x",
    "ipv6 tcp data offset 2": IPv6(src=CLIENT6, dst=VIP6) / TCP(dport=80, dataofs=2),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_l4_to_a_vip_is_dropped_and_counted(lb: Balancer, net: Net, name: str) -> None:
    lb.apply(config(vip(), vip(port=53, protocol="udp"), vip(VIP6, family=6)))
    res = send(lb, net, bytes(E / MALFORMED[name]))
    assert res.action == XdpAction.DROP
    counters = lb.counters()
    assert counters["drop_malformed"] == 1 and counters["new_flows"] == 0


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_l4_elsewhere_is_left_alone(lb: Balancer, net: Net, name: str) -> None:
    lb.apply(config(vip(address="10.0.0.200"), vip(VIP6.replace("100", "200"), family=6)))
    frame = bytes(E / MALFORMED[name])
    res = send(lb, net, frame)
    assert res.action == XdpAction.PASS and res.frame == frame
