"""The XDP load balancer, one frame at a time through BPF_PROG_TEST_RUN, checked at action level
and byte level with scapy as an independent parser."""

from __future__ import annotations

import ipaddress
import time

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from shoal import netns
from shoal.dataplane import packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.testrun import XdpAction, run_xdp

from .harness import BACKENDS4, BACKENDS6, LB_MAC, VIP4, VIP6, Net, config, vip

pytestmark = pytest.mark.bpf
CLIENT4, CLIENT6 = "192.0.2.10", "2001:db8::10"
TO_LB = bytes.fromhex(LB_MAC.replace(":", ""))  # frames arrive addressed to the LB


def send(lb: Balancer, net: Net, frame: bytes):
    return run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex)


def syn(src: str = CLIENT4, sport: int = 40000, dst: str = VIP4, dport: int = 80) -> bytes:
    return packets.tcp_frame(src, dst, sport, dport, packets.TCP_SYN, dmac=TO_LB)


def ack(src: str = CLIENT4, sport: int = 40000, dst: str = VIP4, dport: int = 80) -> bytes:
    return packets.tcp_frame(src, dst, sport, dport, packets.TCP_ACK, b"data", dmac=TO_LB)


def outer_dst(frame: bytes) -> str:
    eth = Ether(frame)
    return str(eth[IP].dst if eth.type == 0x0800 else eth[IPv6].dst)


def check_ipip(out: bytes, original: bytes, backend: str) -> None:
    """Outer header right, checksum valid, inner packet byte-identical."""
    eth = Ether(out)
    assert eth.dst == BACKENDS4[backend]
    assert eth.src == LB_MAC
    outer = eth[IP]
    assert outer.proto == 4 and outer.dst == backend
    assert ipaddress.ip_address(outer.src) in ipaddress.ip_network("172.16.0.0/16")
    assert outer.len == len(original) - 14 + 20
    assert outer.ttl == 64
    assert outer.flags == "DF"  # never fragmented on the way: the decap drops fragments
    resum = IP(bytes(outer))
    del resum.chksum
    assert IP(bytes(resum)).chksum == outer.chksum
    assert bytes(outer.payload)[: len(original) - 14] == original[14:]


def test_syn_to_vip_is_encapsulated_to_the_predicted_backend(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip()))
    for sport in range(40000, 40040):
        frame = syn(sport=sport)
        predicted = lb.trace(CLIENT4, sport, VIP4, 80, "tcp")
        assert predicted.via == "maglev"
        res = send(lb, net, frame)
        assert res.action == XdpAction.TX
        check_ipip(res.frame, frame, predicted.backend)
    counters = lb.counters()
    assert counters["tx"] == 40 and counters["new_flows"] == 40
    assert counters["cache_insert"] == 40


def test_every_backend_gets_new_flows(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip()))
    seen = {outer_dst(send(lb, net, syn(sport=p)).frame) for p in range(1000, 1100)}
    assert seen == set(list(BACKENDS4)[:3])


def test_existing_flow_stays_on_its_backend_after_a_table_change(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(backends=2)))
    first = {p: outer_dst(send(lb, net, syn(sport=p)).frame) for p in range(2000, 2060)}
    lb.apply(config(vip(backends=6)))
    moved = [
        p
        for p in first
        if lb.trace(CLIENT4, p, VIP4, 80, "tcp").via == "session"
        and lb.trace(CLIENT4, p, VIP4, 80, "tcp").backend != first[p]
    ]
    assert not moved
    new_choice = {}
    for p in first:
        key = lb.maps.sessions.get  # noqa: F841 - the session is what keeps it
        res = send(lb, net, ack(sport=p))
        assert res.action == XdpAction.TX
        assert outer_dst(res.frame) == first[p]
        new_choice[p] = outer_dst(send(lb, net, syn(sport=p)).frame)
    # The table did change for some of these flows (otherwise the test proves nothing).
    assert any(new_choice[p] != first[p] for p in first)
    assert lb.counters()["cache_hit"] == len(first)


def test_drained_backend_keeps_flows_and_gets_no_new_ones(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip()))
    flows = {p: outer_dst(send(lb, net, syn(sport=p)).frame) for p in range(3000, 3090)}
    drained = "10.1.0.2"
    on_drained = [p for p, b in flows.items() if b == drained]
    assert on_drained
    backends = [{"address": a, "weight": 0 if a == drained else 1} for a in list(BACKENDS4)[:3]]
    lb.apply(config(vip(backends=backends)))
    for p in on_drained:
        assert outer_dst(send(lb, net, ack(sport=p)).frame) == drained
    fresh = {outer_dst(send(lb, net, syn(sport=p)).frame) for p in range(5000, 5300)}
    assert drained not in fresh and len(fresh) == 2


def test_unhealthy_backend_flows_are_rehashed(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip()))
    flows = {p: outer_dst(send(lb, net, syn(sport=p)).frame) for p in range(3000, 3090)}
    down = "10.1.0.1"
    backends = [{"address": a, "healthy": a != down} for a in list(BACKENDS4)[:3]]
    lb.apply(config(vip(backends=backends)))
    for p, b in flows.items():
        now = outer_dst(send(lb, net, ack(sport=p)).frame)
        assert now != down
        if b != down:
            assert now == b
    assert lb.counters()["cache_stale"] == sum(1 for b in flows.values() if b == down)


def test_removed_backend_flows_are_rehashed_and_slot_reuse_is_safe(lb: Balancer, net: Net):
    lb.apply(config(vip()))
    flows = {p: outer_dst(send(lb, net, syn(sport=p)).frame) for p in range(3000, 3060)}
    gone = "10.1.0.3"
    lb.apply(config(vip(backends=2)))
    # The freed slot is reused by another backend: stale sessions must not follow it.
    lb.apply(config(vip(backends=[{"address": a} for a in ["10.1.0.1", "10.1.0.2", "10.1.0.5"]])))
    for p, b in flows.items():
        now = outer_dst(send(lb, net, ack(sport=p)).frame)
        if b == gone:
            assert now == lb.trace(CLIENT4, p, VIP4, 80, "tcp").backend
        else:
            assert now == b


def test_vip_without_backends_drops_and_counts(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(backends=0)))
    assert send(lb, net, syn()).action == XdpAction.DROP
    lb.apply(config(vip(backends=[{"address": "10.1.0.1", "healthy": False}])))
    assert send(lb, net, syn(sport=2)).action == XdpAction.DROP
    assert lb.counters()["drop_no_backend"] == 2
    assert lb.maps.tables.read(lb.vips()["tcp://10.0.0.100:80"].vip_id) is None


def test_ipv6_vip_to_ipv6_backends(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(VIP6, family=6)))
    frame = syn(CLIENT6, 41000, VIP6)
    res = send(lb, net, frame)
    assert res.action == XdpAction.TX
    eth = Ether(res.frame)
    outer = eth[IPv6]
    predicted = lb.trace(CLIENT6, 41000, VIP6, 80, "tcp").backend
    assert outer.dst == predicted and eth.dst == BACKENDS6[predicted]
    assert outer.nh == 41 and outer.plen == len(frame) - 14
    assert ipaddress.ip_address(outer.src) in ipaddress.ip_network("fd00:5ea1::/96")
    assert bytes(outer.payload) == frame[14:]


def test_ipv4_vip_to_ipv6_backend(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(backends=[{"address": "fd01::1"}])))
    frame = syn()
    res = send(lb, net, frame)
    outer = Ether(res.frame)[IPv6]
    assert res.action == XdpAction.TX and outer.nh == 4 and outer.dst == "fd01::1"
    assert bytes(outer.payload) == frame[14:]


@pytest.mark.parametrize("family", [4, 6])
def test_gue_encapsulation(lb: Balancer, net: Net, family: int) -> None:
    address, client = (VIP4, CLIENT4) if family == 4 else (VIP6, CLIENT6)
    lb.apply(config(vip(address, family=family, encap="gue"), gue_port=7777))
    frame = syn(client, 42000, address)
    res = send(lb, net, frame)
    assert res.action == XdpAction.TX
    eth = Ether(res.frame)
    outer = eth[IP] if family == 4 else eth[IPv6]
    udp = outer[UDP]
    assert udp.dport == 7777 and 0xC000 <= udp.sport <= 0xFFFF
    assert udp.len == 8 + len(frame) - 14
    assert bytes(udp.payload) == frame[14:]
    assert outer.dst == lb.trace(client, 42000, address, 80, "tcp").backend
    # Same flow, same outer source port: one receive queue per flow.
    assert Ether(send(lb, net, ack(client, 42000, address)).frame)[UDP].sport == udp.sport


def test_vlan_tag_is_kept(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip()))
    frame = packets.tcp_frame(CLIENT4, VIP4, 43000, 80, packets.TCP_SYN, vlan=42)
    res = send(lb, net, frame)
    assert res.action == XdpAction.TX
    eth = Ether(res.frame)
    assert eth[Dot1Q].vlan == 42 and eth[Dot1Q].type == 0x0800
    assert eth[Dot1Q][IP].proto == 4 and bytes(eth[Dot1Q][IP].payload) == frame[18:]


def test_ip_options_travel_inside_the_tunnel(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip()))
    inner = IP(src=CLIENT4, dst=VIP4, options=b"\x94\x04\x00\x00") / TCP(
        sport=44000, dport=80, flags="S"
    )
    frame = bytes(Ether(src=packets.MAC_A, dst=net.lb_mac) / inner)
    res = send(lb, net, frame)
    assert res.action == XdpAction.TX
    assert bytes(Ether(res.frame)[IP].payload) == frame[14:]


def test_udp_sessions_expire(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(protocol="udp", port=53, backends=1), udp_timeout=0.3))
    frame = packets.udp_frame(CLIENT4, VIP4, 5353, 53)
    assert outer_dst(send(lb, net, frame).frame) == "10.1.0.1"
    lb.apply(
        config(
            vip(
                protocol="udp",
                port=53,
                backends=[{"address": "10.1.0.1", "weight": 0}, {"address": "10.1.0.2"}],
            ),
            udp_timeout=0.3,
        )
    )
    assert outer_dst(send(lb, net, frame).frame) == "10.1.0.1"  # cached, refreshed
    time.sleep(0.5)
    assert outer_dst(send(lb, net, frame).frame) == "10.1.0.2"  # expired: hashed afresh
    assert lb.counters()["cache_expired"] == 1


def test_any_port_vip_and_source_hash(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(port=0, any_port=True, hash="source_ip")))
    seen = {
        outer_dst(send(lb, net, syn(sport=s, dport=d)).frame)
        for s, d in [(1000, 22), (2000, 443), (3000, 8080), (4000, 9)]
    }
    assert len(seen) == 1  # one client, one backend, whatever the ports
    assert send(lb, net, packets.udp_frame(CLIENT4, VIP4, 1, 53)).action == XdpAction.PASS


def test_oversized_packet_is_dropped_and_counted(lb: Balancer, net: Net) -> None:
    # With too-big replies off (tests/bpf/test_icmp.py covers them on).
    lb.apply(config(vip(), mtu=1500, icmp_too_big_rate=0))
    big = packets.tcp_frame(CLIENT4, VIP4, 45000, 80, packets.TCP_ACK, b"x" * 1460)
    assert send(lb, net, big).action == XdpAction.DROP
    assert lb.counters()["drop_too_big"] == 1
    fits = packets.tcp_frame(CLIENT4, VIP4, 45000, 80, packets.TCP_ACK, b"x" * 1400)
    assert send(lb, net, fits).action == XdpAction.TX


def test_gateway_mac_fallback_and_no_route(lb: Balancer, net: Net) -> None:
    unknown = [{"address": "10.9.9.9"}]  # no route, no neighbour
    lb.apply(config(vip(backends=unknown)))
    assert send(lb, net, syn()).action == XdpAction.DROP
    assert lb.counters()["drop_no_route"] == 1
    lb.apply(config(vip(backends=unknown), gateway_mac="02:00:00:00:99:99"))
    res = send(lb, net, syn(sport=2))
    assert res.action == XdpAction.TX
    assert Ether(res.frame).dst == "02:00:00:00:99:99" and Ether(res.frame).src == net.lb_mac
    assert lb.counters()["fib_fallback"] == 1


def test_unresolved_neighbour_goes_through_the_kernel(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(backends=[{"address": "10.1.0.200"}])))  # on-link, no ARP entry
    frame = syn()
    res = send(lb, net, frame)
    assert res.action == XdpAction.PASS
    eth = Ether(res.frame)
    assert eth.dst == net.lb_mac  # still addressed to us: the kernel forwards it
    assert eth[IP].dst == "10.1.0.200" and bytes(eth[IP].payload) == frame[14:]
    assert lb.counters()["pass_no_neigh"] == 1


def set_neighbour(ip: str, mac: str) -> None:
    netns.run(["ip", "neigh", "replace", ip, "lladdr", mac, "nud", "permanent", "dev", "lb0"])


def test_cached_next_hops_follow_neighbour_changes(lb: Balancer, net: Net) -> None:
    backend = "10.1.0.1"
    lb.apply(config(vip(backends=[{"address": backend}])))
    assert Ether(send(lb, net, syn()).frame).dst == BACKENDS4[backend]
    new_mac = "02:00:00:00:cc:01"
    set_neighbour(backend, new_mac)
    try:
        # The fast path keeps the cached answer (no FIB lookup per packet) ...
        assert Ether(send(lb, net, ack()).frame).dst == BACKENDS4[backend]
        # ... until user space bumps the epoch (agents do on neighbour events) ...
        lb.refresh_nexthops()
        assert Ether(send(lb, net, ack()).frame).dst == new_mac
        set_neighbour(backend, BACKENDS4[backend])
        # ... or a new flow finds the entry older than a second.
        time.sleep(1.1)
        assert Ether(send(lb, net, syn(sport=7)).frame).dst == BACKENDS4[backend]
    finally:
        set_neighbour(backend, BACKENDS4[backend])
