"""The fuzz suite for every class of unusual traffic the balancer handles (issue 13): IPv6
extension headers, QinQ, fragments, ICMP errors quoting a VIP flow, malformed L4 headers.
Each class has fixed frames with the verdict an operator expects, then hypothesis mutates and
truncates them and an independent model (oracle.py) says what must happen."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror
from scapy.layers.inet6 import (
    ICMPv6PacketTooBig,
    IPerror6,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from shoal.dataplane.balancer import Balancer

from .harness import LB_MAC, VIP4, VIP6, Net, check, config, vip
from .oracle import TCP as P_TCP
from .oracle import UDP as P_UDP
from .oracle import classify

pytestmark = pytest.mark.bpf
E = Ether(src="02:00:00:00:00:01", dst=LB_MAC)
C4, C6 = "192.0.2.1", "2001:db8::1"
VIPS = {(VIP4, 80, P_TCP), (VIP4, 53, P_UDP), (VIP6, 80, P_TCP)}


def frag_later4() -> bytes:
    return bytes(E / IP(src=C4, dst=VIP4, id=777, frag=185, proto=17) / (b"y" * 40))


# name -> (frame, expected verdict)
CLASSES: dict[str, tuple[bytes, str]] = {
    "ipv6 hop-by-hop": (
        bytes(E / IPv6(src=C6, dst=VIP6) / IPv6ExtHdrHopByHop() / TCP()),
        "balance",
    ),
    "ipv6 dest opts + routing(0 left)": (
        bytes(
            E
            / IPv6(src=C6, dst=VIP6)
            / IPv6ExtHdrDestOpt()
            / IPv6ExtHdrRouting(segleft=0, addresses=["fd00::9"])
            / TCP()
        ),
        "balance",
    ),
    "ipv6 routing with segments left": (
        bytes(
            E / IPv6(src=C6, dst=VIP6) / IPv6ExtHdrRouting(segleft=1, addresses=["fd00::9"]) / TCP()
        ),
        "pass",
    ),
    "ipv6 chain of five": (
        bytes(
            E
            / IPv6(src=C6, dst=VIP6)
            / IPv6ExtHdrDestOpt()
            / IPv6ExtHdrDestOpt()
            / IPv6ExtHdrDestOpt()
            / IPv6ExtHdrDestOpt()
            / IPv6ExtHdrDestOpt()
            / TCP()
        ),
        "pass",
    ),
    "ipv6 atomic fragment": (
        bytes(E / IPv6(src=C6, dst=VIP6) / IPv6ExtHdrFragment(id=5) / TCP()),
        "balance",
    ),
    "ipv6 first fragment": (
        bytes(E / IPv6(src=C6, dst=VIP6) / IPv6ExtHdrFragment(id=6, m=1) / TCP() / (b"z" * 32)),
        "balance",
    ),
    "ipv6 later fragment, none before": (
        bytes(
            E / IPv6(src=C6, dst=VIP6) / IPv6ExtHdrFragment(id=999, offset=10, nh=6) / (b"z" * 32)
        ),
        "later",
    ),
    "qinq": (bytes(E / Dot1AD(vlan=100) / Dot1Q(vlan=7) / IP(src=C4, dst=VIP4) / TCP()), "balance"),
    "double 802.1q": (
        bytes(E / Dot1Q(vlan=100) / Dot1Q(vlan=7) / IP(src=C4, dst=VIP4) / TCP()),
        "balance",
    ),
    "ipv4 first fragment": (
        bytes(E / IP(src=C4, dst=VIP4, id=12, flags="MF") / UDP(dport=53, len=1000) / (b"q" * 64)),
        "balance",
    ),
    "ipv4 later fragment, none before": (frag_later4(), "later"),
    "icmp frag-needed quoting a vip flow": (
        bytes(
            E
            / IP(src="198.51.100.1", dst=VIP4)
            / ICMP(type=3, code=4, nexthopmtu=1400)
            / IPerror(src=VIP4, dst=C4)
            / TCPerror(sport=80, dport=40000)
        ),
        "balance",
    ),
    "icmp time exceeded quoting udp": (
        bytes(
            E
            / IP(src="198.51.100.1", dst=VIP4)
            / ICMP(type=11)
            / IPerror(src=VIP4, dst=C4)
            / UDPerror(sport=53, dport=5353)
        ),
        "balance",
    ),
    "icmp quoting another source": (
        bytes(
            E
            / IP(src="198.51.100.1", dst=VIP4)
            / ICMP(type=3, code=4)
            / IPerror(src="10.9.9.9", dst=C4)
            / TCPerror(sport=80, dport=40000)
        ),
        "pass",
    ),
    "icmp quoting a non-vip port": (
        bytes(
            E
            / IP(src="198.51.100.1", dst=VIP4)
            / ICMP(type=3, code=4)
            / IPerror(src=VIP4, dst=C4)
            / TCPerror(sport=81, dport=40000)
        ),
        "pass",
    ),
    "icmp echo to the vip": (bytes(E / IP(src=C4, dst=VIP4) / ICMP()), "pass"),
    "icmpv6 packet too big quoting a vip flow": (
        bytes(
            E
            / IPv6(src="2001:db8:ff::1", dst=VIP6)
            / ICMPv6PacketTooBig(mtu=1280)
            / IPerror6(src=VIP6, dst=C6)
            / TCPerror(sport=80, dport=40000)
        ),
        "balance",
    ),
    "tcp data offset 4": (bytes(E / IP(src=C4, dst=VIP4) / TCP(dataofs=4)), "drop"),
    "tcp data offset beyond the packet": (
        bytes(E / IP(src=C4, dst=VIP4) / TCP(dataofs=15)),
        "drop",
    ),
    "tcp data offset 4 elsewhere": (bytes(E / IP(src=C4, dst="10.0.0.9") / TCP(dataofs=4)), "pass"),
    "tcp truncated after the ports": (
        bytes(E / IP(src=C4, dst=VIP4) / TCP(dport=80))[: 14 + 20 + 6],
        "pass",  # the IP length still says 40: beyond the frame, the kernel's
    ),
    "tcp header cut by the ip length": (
        bytes(E / IP(src=C4, dst=VIP4, len=30) / TCP(dport=80)),
        "drop",
    ),
    "udp length beyond the packet": (
        bytes(E / IP(src=C4, dst=VIP4) / UDP(dport=53, len=500) / b"abc"),
        "drop",
    ),
    "udp length below its header": (bytes(E / IP(src=C4, dst=VIP4) / UDP(dport=53, len=4)), "drop"),
    "ipv6 tcp data offset 3": (bytes(E / IPv6(src=C6, dst=VIP6) / TCP(dataofs=3)), "drop"),
}


@pytest.fixture
def lb_classes(lb: Balancer) -> Balancer:
    lb.apply(config(vip(), vip(port=53, protocol="udp"), vip(VIP6, family=6), icmp_too_big_rate=0))
    return lb


@pytest.mark.parametrize("name", list(CLASSES))
def test_class_verdict(lb_classes: Balancer, net: Net, name: str) -> None:
    frame, expected = CLASSES[name]
    assert classify(frame, VIPS) == expected  # the model agrees with the operator's view
    check(lb_classes, net, frame, expected)
    if expected == "drop":
        assert lb_classes.counters()["drop_malformed"] == 1


seeds = st.sampled_from([frame for frame, _ in CLASSES.values()])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = draw(seeds)
    kind = draw(st.sampled_from(["truncated", "mutated", "mutated twice"]))
    if kind == "truncated":
        return base[: draw(st.integers(14, len(base)))]
    for _ in range(1 if kind == "mutated" else 2):
        pos = draw(st.integers(0, len(base) - 1))
        base = base[:pos] + bytes([draw(st.integers(0, 255))]) + base[pos + 1 :]
    return base


FUZZ_EXAMPLES = int(os.environ.get("SHOAL_FUZZ_EXAMPLES", "600"))


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(frame=mutated())
def test_fuzz_unusual_frames(lb_classes: Balancer, net: Net, frame: bytes) -> None:
    check(lb_classes, net, frame, classify(frame, VIPS))
