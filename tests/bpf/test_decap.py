"""The backend-side decap program (tc) through BPF_PROG_TEST_RUN: every tunnel the load balancer
makes comes out as the inner frame; tunnels from other sources or to addresses that are no
local VIP pass untouched, outer fragments are dropped, and everything else passes untouched."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import Ether

from shoal.dataplane.decap import Decap
from shoal.dataplane.prefixes import parse_networks
from shoal.dataplane.testrun import run_prog

pytestmark = pytest.mark.bpf
TC_ACT_OK, TC_ACT_SHOT = 0, 2
E = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
INNER4 = IP(src="192.0.2.1", dst="10.0.0.100") / TCP(sport=1234, dport=80, flags="S")
INNER6 = IPv6(src="2001:db8::1", dst="fd00::100") / TCP(sport=1234, dport=80, flags="S")


@pytest.fixture(scope="module")
def decap() -> Iterator[Decap]:
    d = Decap(gue_port=6080, local_vips=["10.0.0.0/24", "fd00::/64"])
    yield d
    d.close()


def run_tc(decap: Decap, frame: bytes) -> tuple[int, bytes]:
    res = run_prog(decap.obj.prog_fd("shoal_decap"), frame)
    return res.action_value, res.frame


TUNNELS = {
    "ipip": (E / IP(src="172.16.0.9", dst="10.1.0.1", proto=4) / INNER4, INNER4, 0x0800, "ipip"),
    "ip6ip6": (
        E / IPv6(src="fd00:5ea1::9", dst="fd01::1", nh=41) / INNER6,
        INNER6,
        0x86DD,
        "ip6ip6",
    ),
    "ipv4 in ipv6": (
        E / IPv6(src="fd00:5ea1::9", dst="fd01::1", nh=4) / INNER4,
        INNER4,
        0x0800,
        "ip6ip",
    ),
    "gue4": (
        E / IP(src="172.16.0.9", dst="10.1.0.1") / UDP(sport=49152, dport=6080) / INNER4,
        INNER4,
        0x0800,
        "gue4",
    ),
    "gue6 with ipv4 inside": (
        E / IPv6(src="fd00:5ea1::9", dst="fd01::1") / UDP(sport=49152, dport=6080) / INNER4,
        INNER4,
        0x0800,
        "gue6",
    ),
}


@pytest.mark.parametrize("name", list(TUNNELS))
def test_tunnels_are_stripped(decap: Decap, name: str) -> None:
    frame, inner, ethertype, counter = TUNNELS[name]
    before = decap.counters()[counter]
    action, out = run_tc(decap, bytes(frame))
    assert action == TC_ACT_OK
    eth = Ether(out)
    assert eth.type == ethertype
    assert bytes(eth.payload)[: len(bytes(inner))] == bytes(inner)
    assert decap.counters()[counter] == before + 1


@pytest.mark.parametrize(
    "frame",
    [
        E / INNER4,
        E / IP(src="172.16.0.9", dst="10.1.0.1") / UDP(sport=1, dport=53) / b"dns",
        E / IPv6(src="2001:db8::1", dst="fd01::1") / UDP(sport=1, dport=6081) / INNER4,
    ],
)
def test_other_traffic_passes_untouched(decap: Decap, frame) -> None:
    action, out = run_tc(decap, bytes(frame))
    assert action == TC_ACT_OK and out == bytes(frame)


FOREIGN = {
    "ipip from elsewhere": E / IP(src="203.0.113.9", dst="10.1.0.1", proto=4) / INNER4,
    "ip6ip6 from elsewhere": E / IPv6(src="2001:db8::9", dst="fd01::1", nh=41) / INNER6,
    "gue4 from elsewhere": E
    / IP(src="203.0.113.9", dst="10.1.0.1")
    / UDP(sport=49152, dport=6080)
    / INNER4,
    "fragment from elsewhere": E
    / IP(src="203.0.113.9", dst="10.1.0.1", proto=4, flags="MF")
    / INNER4,
}


@pytest.mark.parametrize("name", list(FOREIGN))
def test_tunnels_from_foreign_sources_pass_untouched(decap: Decap, name: str) -> None:
    before = decap.counters()
    action, out = run_tc(decap, bytes(FOREIGN[name]))
    assert action == TC_ACT_OK and out == bytes(FOREIGN[name])
    after = decap.counters()
    assert after["pass_foreign_src"] == before["pass_foreign_src"] + 1
    assert sum(after.values()) == sum(before.values()) + 1


NOT_LOCAL = {
    "ipip to a host behind the backend": E
    / IP(src="172.16.0.9", dst="10.1.0.1", proto=4)
    / IP(src="192.0.2.1", dst="192.168.1.1")
    / TCP(dport=22, flags="S"),
    "ip6ip6 to another network": E
    / IPv6(src="fd00:5ea1::9", dst="fd01::1", nh=41)
    / IPv6(src="2001:db8::1", dst="2001:db8:ffff::1")
    / TCP(dport=22, flags="S"),
    "gue6 to loopback": E
    / IPv6(src="fd00:5ea1::9", dst="fd01::1")
    / UDP(sport=49152, dport=6080)
    / IP(src="192.0.2.1", dst="127.0.0.1")
    / TCP(dport=22, flags="S"),
    "ipip with a truncated inner header": E
    / IP(src="172.16.0.9", dst="10.1.0.1", proto=4)
    / bytes(INNER4)[:12],
}


@pytest.mark.parametrize("name", list(NOT_LOCAL))
def test_tunnels_to_non_local_destinations_pass_untouched(decap: Decap, name: str) -> None:
    before = decap.counters()["pass_not_local"]
    action, out = run_tc(decap, bytes(NOT_LOCAL[name]))
    assert action == TC_ACT_OK and out == bytes(NOT_LOCAL[name])
    assert decap.counters()["pass_not_local"] == before + 1


FRAGMENTS = {
    "ipip first fragment": E / IP(src="172.16.0.9", dst="10.1.0.1", proto=4, flags="MF") / INNER4,
    "ipip later fragment": E / IP(src="172.16.0.9", dst="10.1.0.1", proto=4, frag=8) / (b"x" * 40),
    "gue4 first fragment": E
    / IP(src="172.16.0.9", dst="10.1.0.1", flags="MF")
    / UDP(sport=49152, dport=6080)
    / INNER4,
    "ip6ip6 fragment": E
    / IPv6(src="fd00:5ea1::9", dst="fd01::1")
    / IPv6ExtHdrFragment(nh=41, m=1, id=7)
    / INNER6,
    "ip6ip later fragment": E
    / IPv6(src="fd00:5ea1::9", dst="fd01::1")
    / IPv6ExtHdrFragment(nh=4, offset=4, id=7)
    / (b"x" * 40),
    "gue6 first fragment": E
    / IPv6(src="fd00:5ea1::9", dst="fd01::1")
    / IPv6ExtHdrFragment(nh=17, m=1, id=7)
    / UDP(sport=49152, dport=6080)
    / INNER4,
}


@pytest.mark.parametrize("name", list(FRAGMENTS))
def test_outer_fragments_are_dropped(decap: Decap, name: str) -> None:
    before = decap.counters()["drop_fragment"]
    action, _ = run_tc(decap, bytes(FRAGMENTS[name]))
    assert action == TC_ACT_SHOT
    assert decap.counters()["drop_fragment"] == before + 1


@pytest.mark.parametrize(
    "frame",
    [
        # A later UDP fragment carries no port: it may be any UDP traffic, the kernel's to keep.
        E / IP(src="172.16.0.9", dst="10.1.0.1", proto=17, frag=8) / (b"x" * 40),
        E / IPv6(src="fd00:5ea1::9", dst="fd01::1") / IPv6ExtHdrFragment(nh=17, offset=4) / b"x",
    ],
)
def test_udp_fragments_without_a_port_pass_untouched(decap: Decap, frame) -> None:
    before = decap.counters()
    action, out = run_tc(decap, bytes(frame))
    assert action == TC_ACT_OK and out == bytes(frame)
    assert decap.counters() == before


def test_an_unconfigured_decap_strips_nothing() -> None:
    d = Decap(gue_port=6080, local_vips=[], sources=[])
    try:
        for name, (frame, *_rest) in TUNNELS.items():
            action, out = run_tc(d, bytes(frame))
            assert action == TC_ACT_OK and out == bytes(frame), name
        assert d.counters()["pass_foreign_src"] == len(TUNNELS)
    finally:
        d.close()


def test_prefixes_can_be_replaced(decap: Decap) -> None:
    frame = bytes(TUNNELS["ipip"][0])
    try:
        decap.configure(local_vips=[ipaddress.ip_network("10.9.0.0/16")])
        assert run_tc(decap, frame)[1] == frame
        assert [str(n) for n in decap.local_vips.networks()] == ["10.9.0.0/16"]
    finally:
        decap.configure(local_vips=parse_networks(["10.0.0.0/24", "fd00::/64"]))
    assert run_tc(decap, frame)[1] != frame
