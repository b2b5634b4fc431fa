"""SRv6 encapsulation (encap "srv6"): IPv6 + a one-segment SRH whose segment is the backend's
SID, so a backend's kernel strips it with seg6local End.DX4 / End.DX6. Checked byte by byte with
scapy as the independent parser; the kernel's own acceptance is tests/netns/test_srv6_e2e.py."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet import ICMP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting
from scapy.layers.l2 import Ether

from shoal.dataplane import packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.testrun import XdpAction, run_xdp
from shoal.errors import ShoalError

from .harness import BACKENDS6, LB_MAC, VIP4, VIP6, Net, config, vip

pytestmark = pytest.mark.bpf
TO_LB = bytes.fromhex(LB_MAC.replace(":", ""))
CLIENTS = {4: ("192.0.2.10", VIP4, 4), 6: ("2001:db8::10", VIP6, 41)}


@pytest.mark.parametrize("family", [4, 6])
def test_srv6_carries_the_flow_to_the_backends_sid(lb: Balancer, net: Net, family: int) -> None:
    client, address, inner_proto = CLIENTS[family]
    lb.apply(config(vip(address, backends=3, family=6, encap="srv6")))
    frame = packets.tcp_frame(client, address, 44000, 80, packets.TCP_SYN, dmac=TO_LB)
    res = run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex)
    assert res.action == XdpAction.TX
    eth = Ether(res.frame)
    sid = lb.trace(client, 44000, address, 80, "tcp").backend
    assert eth.type == 0x86DD and eth.dst == BACKENDS6[sid]
    outer = eth[IPv6]
    assert outer.nh == 43 and outer.dst == sid  # segments left 0: the SID is the destination
    assert ipaddress.ip_address(outer.src) in ipaddress.ip_network("fd00:5ea1::/96")
    assert outer.plen == 24 + len(frame) - 14
    srh = outer[IPv6ExtHdrSegmentRouting]
    assert srh.type == 4 and srh.len == 2 and srh.segleft == 0 and srh.lastentry == 0
    assert srh.addresses == [sid] and srh.nh == inner_proto
    assert bytes(srh.payload) == frame[14:]  # the client's packet, untouched


def test_srv6_sees_the_srh_in_the_mtu_check(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(backends=3, family=6, encap="srv6"), mtu=1500))
    # 1500 - 40 - 24 = 1436 bytes of inner packet fit; 1437 do not.
    fits = packets.tcp_frame("192.0.2.10", VIP4, 44001, 80, packets.TCP_ACK, b"x" * 1396)
    big = packets.tcp_frame("192.0.2.10", VIP4, 44001, 80, packets.TCP_ACK, b"x" * 1397)
    assert run_xdp(lb.prog_fd, fits, ingress_ifindex=net.ifindex).action == XdpAction.TX
    res = run_xdp(lb.prog_fd, big, ingress_ifindex=net.ifindex)
    # Too big after encapsulation: the client is told the MTU the SRH leaves (lb/icmp.h).
    assert res.action == XdpAction.TX
    icmp = Ether(res.frame)[ICMP]
    assert (icmp.type, icmp.code, icmp.nexthopmtu) == (3, 4, 1500 - 40 - 24)
    assert lb.counters()["icmp_too_big"] == 1


def test_srv6_refuses_an_ipv4_backend() -> None:
    with pytest.raises((ShoalError, ValueError), match="srv6"):
        config(vip(backends=[{"address": "10.1.0.1"}], encap="srv6"))


def test_srv6_round_trips_through_the_maps(lb: Balancer) -> None:
    lb.apply(config(vip(backends=2, family=6, encap="srv6")))
    assert [v.encap for v in lb.current_vips()] == ["srv6"]
