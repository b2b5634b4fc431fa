"""Fragments to a VIP: the first fragment is balanced on its ports and its backend remembered
under (source, destination, identification, protocol); later fragments follow it (IPv4 and the
IPv6 fragment header). A later fragment that arrives first is the kernel's, untouched."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether

from shoal.dataplane.balancer import Balancer
from shoal.dataplane.testrun import XdpAction, run_xdp

from .harness import BACKENDS4, LB_MAC, VIP4, VIP6, Net, config, vip

pytestmark = pytest.mark.bpf
CLIENT4, CLIENT6 = "192.0.2.10", "2001:db8::10"
E = Ether(src="02:00:00:00:00:01", dst=LB_MAC)


def send(lb: Balancer, net: Net, frame: bytes):
    return run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex)


def frags4(sport: int, ident: int, size: int = 3000) -> list[bytes]:
    dgram = IP(src=CLIENT4, dst=VIP4, id=ident) / UDP(sport=sport, dport=53) / (b"d" * size)
    return [bytes(E / f) for f in fragment(dgram, fragsize=1000)]


def frags6(sport: int, ident: int, size: int = 3000) -> list[bytes]:
    dgram = (
        IPv6(src=CLIENT6, dst=VIP6)
        / IPv6ExtHdrFragment(id=ident)
        / UDP(sport=sport, dport=53)
        / (b"d" * size)
    )
    return [bytes(E / f) for f in fragment6(dgram, 1280)]


def outer(frame: bytes) -> str:
    eth = Ether(frame)
    return str(eth[IP].dst if eth.type == 0x0800 else eth[IPv6].dst)


def test_every_fragment_of_a_datagram_reaches_one_backend(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(port=53, protocol="udp", backends=5)))
    seen = set()
    for n, sport in enumerate(range(5000, 5040)):
        parts = frags4(sport, 100 + n)
        assert len(parts) == 4
        want = lb.trace(CLIENT4, sport, VIP4, 53, "udp").backend
        for part in parts:
            res = send(lb, net, part)
            assert res.action == XdpAction.TX
            assert outer(res.frame) == want
            eth = Ether(res.frame)
            assert bytes(eth[IP].payload)[: len(part) - 14] == part[14:]  # fragment untouched
        seen.add(want)
    assert len(seen) >= 4  # datagrams still spread
    counters = lb.counters()
    assert counters["frag_first"] == 40 and counters["frag_follow"] == 120


def test_ipv6_fragments_follow_their_first(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(VIP6, port=53, protocol="udp", family=6, backends=4)))
    for n, sport in enumerate(range(6000, 6010)):
        parts = frags6(sport, 7000 + n)
        assert len(parts) == 3
        want = lb.trace(CLIENT6, sport, VIP6, 53, "udp").backend
        assert [outer(send(lb, net, p).frame) for p in parts] == [want] * 3
    assert lb.counters()["frag_follow"] == 20


def test_a_later_fragment_that_arrives_first_is_left_to_the_kernel(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(port=53, protocol="udp")))
    parts = frags4(5000, 42)
    res = send(lb, net, parts[2])
    assert res.action == XdpAction.PASS and res.frame == parts[2]
    assert lb.counters()["pass_fragment"] == 1
    # Same source, destination and protocol, another datagram: never follows this one.
    send(lb, net, frags4(5001, 43)[0])
    res = send(lb, net, parts[1])
    assert res.action == XdpAction.PASS


def test_fragments_of_a_removed_backend_are_not_followed(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(port=53, protocol="udp", backends=3)))
    parts = frags4(5000, 44)
    owner = outer(send(lb, net, parts[0]).frame)
    rest = [{"address": a} for a in list(BACKENDS4)[:3] if a != owner]
    lb.apply(config(vip(port=53, protocol="udp", backends=rest)))
    res = send(lb, net, parts[1])
    assert res.action == XdpAction.PASS  # the slot's generation moved on


def test_fragments_elsewhere_pass_unchanged(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(port=53, protocol="udp")))
    dgram = IP(src=CLIENT4, dst="10.0.0.7", id=9) / UDP(sport=1, dport=53) / (b"d" * 3000)
    for f in fragment(dgram, fragsize=1000):
        frame = bytes(E / f)
        res = send(lb, net, frame)
        assert res.action == XdpAction.PASS and res.frame == frame
    assert lb.counters()["frag_first"] == 0
