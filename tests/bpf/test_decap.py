"""The backend-side decap program (tc) through BPF_PROG_TEST_RUN: every tunnel the load balancer
makes comes out as the inner frame, and everything else passes untouched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from shoal.dataplane.decap import Decap
from shoal.dataplane.testrun import run_prog

pytestmark = pytest.mark.bpf
TC_ACT_OK, TC_ACT_SHOT = 0, 2
E = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
INNER4 = IP(src="192.0.2.1", dst="10.0.0.100") / TCP(sport=1234, dport=80, flags="S")
INNER6 = IPv6(src="2001:db8::1", dst="fd00::100") / TCP(sport=1234, dport=80, flags="S")


@pytest.fixture(scope="module")
def decap() -> Iterator[Decap]:
    d = Decap(gue_port=6080)
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
