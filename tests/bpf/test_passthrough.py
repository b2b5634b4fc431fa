"""Traffic that is not for a VIP leaves the XDP program byte-identical with XDP_PASS, and no
frame, however malformed, makes it misbehave."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import ARP, Dot1Q, Ether

from shoal.dataplane import packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.testrun import XdpAction, run_xdp

from .harness import LB_MAC, VIP4, VIP6, Net, check, config, vip
from .oracle import TCP as TCP_
from .oracle import classify

pytestmark = pytest.mark.bpf
E = Ether(src="02:00:00:00:00:01", dst=LB_MAC)

NOT_FOR_A_VIP = {
    "arp": E / ARP(pdst=VIP4),
    "ipv4 other address": E / IP(src="192.0.2.1", dst="10.0.0.99") / TCP(dport=80, flags="S"),
    "ipv4 other port": E / IP(src="192.0.2.1", dst=VIP4) / TCP(dport=81, flags="S"),
    "ipv4 other protocol": E / IP(src="192.0.2.1", dst=VIP4) / UDP(dport=80),
    "icmp to the vip": E / IP(src="192.0.2.1", dst=VIP4) / ICMP(),
    "icmp elsewhere": E / IP(src="192.0.2.1", dst="8.8.8.8") / ICMP(),
    "first fragment elsewhere": E
    / IP(src="192.0.2.1", dst="10.0.0.7", flags="MF")
    / TCP(dport=80)
    / ("x" * 64),
    "later fragment, no first seen": E / IP(src="192.0.2.1", dst=VIP4, frag=8) / ("x" * 64),
    "ipv4 options elsewhere": E
    / IP(src="192.0.2.1", dst="10.0.0.7", options=b"\x94\x04\0\0")
    / TCP(dport=80),
    "vlan other address": E / Dot1Q(vlan=7) / IP(src="192.0.2.1", dst="10.0.0.7") / TCP(),
    "ipv6 other address": E / IPv6(src="2001:db8::1", dst="fd00::7") / TCP(dport=80, flags="S"),
    "ipv6 later fragment, no first seen": E
    / IPv6(src="2001:db8::1", dst=VIP6)
    / IPv6ExtHdrFragment(offset=3, nh=6)
    / ("x" * 24),
    "truncated ipv4": bytes(E / IP(src="192.0.2.1", dst=VIP4) / TCP(dport=80))[:30],
    "truncated tcp": bytes(E / IP(src="192.0.2.1", dst=VIP4) / TCP(dport=80))[:40],
    "ipv4 length beyond frame": bytes(E / IP(src="192.0.2.1", dst=VIP4, len=400) / TCP(dport=80)),
}


@pytest.fixture
def lb_with_vips(lb: Balancer) -> Balancer:
    lb.apply(config(vip(), vip(VIP6, family=6)))
    return lb


@pytest.mark.parametrize("name", list(NOT_FOR_A_VIP))
def test_non_vip_frames_pass_unchanged(lb_with_vips: Balancer, net: Net, name: str) -> None:
    frame = bytes(NOT_FOR_A_VIP[name])
    res = run_xdp(lb_with_vips.prog_fd, frame, ingress_ifindex=net.ifindex)
    assert res.action == XdpAction.PASS
    assert res.frame == frame


valid = st.sampled_from(
    [
        packets.tcp_frame("192.0.2.1", VIP4, 1000, 80),
        packets.tcp_frame("2001:db8::1", VIP6, 1000, 80),
        packets.udp_frame("192.0.2.1", VIP4, 1000, 80),
        packets.tcp_frame("192.0.2.1", VIP4, 1000, 80, vlan=5),
    ]
)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "truncated", "mutated"]))
    if kind == "random":
        return draw(st.binary(min_size=0, max_size=200))
    base = draw(valid)
    if kind == "truncated":
        return base[: draw(st.integers(0, len(base)))]
    pos = draw(st.integers(0, len(base) - 1))
    return base[:pos] + bytes([draw(st.integers(0, 255))]) + base[pos + 1 :]


FUZZ_EXAMPLES = int(os.environ.get("SHOAL_FUZZ_EXAMPLES", "600"))


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(frame=frames())
def test_fuzz_frames(lb_with_vips: Balancer, net: Net, frame: bytes) -> None:
    if len(frame) < 14:
        return  # the kernel refuses test runs shorter than an Ethernet header
    # The oracle (oracle.py, independent of the C) says what the operator expects.
    check(lb_with_vips, net, frame, classify(frame, {(VIP4, 80, TCP_), (VIP6, 80, TCP_)}))
