"""A listener's allowed_cidrs in the XDP program, one frame at a time through BPF_PROG_TEST_RUN:
clients inside a VIP's prefixes are balanced, others dropped and counted, VIPs without a list
untouched, and a changed list holds for every packet at once."""

from __future__ import annotations

import ctypes
import ipaddress

import pytest

from shoal.dataplane import abi, flowhash, packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.testrun import XdpAction, run_xdp

from .harness import LB_MAC, VIP4, VIP6, Net, config, vip

pytestmark = pytest.mark.bpf
TO_LB = bytes.fromhex(LB_MAC.replace(":", ""))
ALLOWED4, DENIED4 = "192.0.2.10", "198.51.100.7"
ALLOWED6, DENIED6 = "2001:db8:1::10", "2001:db8:2::10"


def syn(src: str, dst: str = VIP4, sport: int = 40000, dport: int = 80) -> bytes:
    return packets.tcp_frame(src, dst, sport, dport, packets.TCP_SYN, dmac=TO_LB)


def ack(src: str, dst: str = VIP4, sport: int = 40000, dport: int = 80) -> bytes:
    return packets.tcp_frame(src, dst, sport, dport, packets.TCP_ACK, b"data", dmac=TO_LB)


def send(lb: Balancer, net: Net, frame: bytes) -> XdpAction:
    return XdpAction(run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex).action)


def vip_id(lb: Balancer, name: str) -> int:
    return lb.vips()[name].vip_id


CASES = [
    # (family, allowed_cidrs, client, expected)
    (4, ["192.0.2.0/24"], ALLOWED4, XdpAction.TX),
    (4, ["192.0.2.0/24"], DENIED4, XdpAction.DROP),
    (4, ["192.0.2.10/32"], ALLOWED4, XdpAction.TX),
    (4, ["192.0.2.11/32"], ALLOWED4, XdpAction.DROP),
    (4, ["198.51.100.0/24", "192.0.2.0/25"], ALLOWED4, XdpAction.TX),
    (4, ["0.0.0.0/0"], DENIED4, XdpAction.TX),
    (6, ["2001:db8:1::/48"], ALLOWED6, XdpAction.TX),
    (6, ["2001:db8:1::/48"], DENIED6, XdpAction.DROP),
    (6, ["2001:db8:1::10/128"], ALLOWED6, XdpAction.TX),
    (6, ["2001:db8::/32"], DENIED6, XdpAction.TX),
    (6, ["::/0"], DENIED6, XdpAction.TX),
]


@pytest.mark.parametrize(("family", "cidrs", "client", "expected"), CASES)
def test_source_checked_against_the_vips_prefixes(
    lb: Balancer, net: Net, family: int, cidrs: list[str], client: str, expected: XdpAction
) -> None:
    address = VIP4 if family == 4 else VIP6
    lb.apply(config(vip(address, family=family, allowed_cidrs=cidrs)))
    name = next(iter(lb.vips()))
    assert send(lb, net, syn(client, address)) == expected
    dropped = int(expected == XdpAction.DROP)
    assert lb.counters()["drop_acl"] == dropped
    assert lb.acl_drops(vip_id(lb, name)) == dropped
    assert lb.counters()["new_flows"] == 1 - dropped  # a denied client costs no Maglev, no session
    trace = lb.trace(client, 40000, address, 80, "tcp")
    assert (trace.verdict == "drop: source not in allowed_cidrs") == bool(dropped)


def test_vips_without_a_list_are_unaffected(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(port=80, allowed_cidrs=["192.0.2.0/24"]), vip(port=443)))
    assert send(lb, net, syn(DENIED4, dport=443)) == XdpAction.TX
    assert send(lb, net, ack(DENIED4, dport=443)) == XdpAction.TX
    assert send(lb, net, syn(DENIED4, dport=80)) == XdpAction.DROP
    assert lb.counters()["drop_acl"] == 1
    assert lb.acl_drops(vip_id(lb, "tcp://10.0.0.100:443")) == 0
    assert lb.acl_drops(vip_id(lb, "tcp://10.0.0.100:80")) == 1
    status = {s.name: s.acl_drops for s in lb.status()}
    assert status == {"tcp://10.0.0.100:443": 0, "tcp://10.0.0.100:80": 1}


def test_udp_is_checked_too(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(port=53, protocol="udp", allowed_cidrs=["192.0.2.0/24"])))
    ok = packets.udp_frame(ALLOWED4, VIP4, 5000, 53, b"q", dmac=TO_LB)
    bad = packets.udp_frame(DENIED4, VIP4, 5000, 53, b"q", dmac=TO_LB)
    assert send(lb, net, ok) == XdpAction.TX
    assert send(lb, net, bad) == XdpAction.DROP


def test_a_narrowed_list_ends_established_flows(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(allowed_cidrs=["192.0.2.0/24", "198.51.100.0/24"])))
    assert send(lb, net, syn(DENIED4)) == XdpAction.TX
    assert send(lb, net, ack(DENIED4)) == XdpAction.TX  # a session hit
    report = lb.apply(config(vip(allowed_cidrs=["192.0.2.0/24"])))
    assert report.changed == ["tcp://10.0.0.100:80"]
    assert send(lb, net, ack(DENIED4)) == XdpAction.DROP  # the session does not bypass it
    assert send(lb, net, ack(ALLOWED4, sport=40001)) == XdpAction.TX


def test_a_new_list_switches_whole_and_leaves_no_old_entries(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(allowed_cidrs=["192.0.2.0/24", "203.0.113.0/24"])))
    vid = vip_id(lb, "tcp://10.0.0.100:80")
    first = lb.maps.acl.active_id(vid)
    lb.apply(config(vip(allowed_cidrs=["198.51.100.0/24"])))
    second = lb.maps.acl.active_id(vid)
    assert {first, second} == {2 * vid, 2 * vid + 1}
    assert {k: sorted(map(str, v)) for k, v in lb.maps.acl.read().items()} == {
        second: ["198.51.100.0/24"]
    }
    assert send(lb, net, syn(ALLOWED4)) == XdpAction.DROP
    assert send(lb, net, syn(DENIED4)) == XdpAction.TX
    # The same list again changes nothing, not even the id.
    assert lb.apply(config(vip(allowed_cidrs=["198.51.100.0/24"]))).changed == []
    assert lb.maps.acl.active_id(vid) == second


def test_dropping_the_list_or_the_vip_clears_its_prefixes(lb: Balancer, net: Net) -> None:
    lb.apply(
        config(
            vip(allowed_cidrs=["192.0.2.0/24"]),
            vip(VIP6, family=6, allowed_cidrs=["2001:db8:1::/48"]),
        )
    )
    lb.apply(config(vip(), vip(VIP6, family=6, allowed_cidrs=["2001:db8:1::/48"])))
    assert send(lb, net, syn(DENIED4)) == XdpAction.TX
    assert [sorted(map(str, v)) for v in lb.maps.acl.read().values()] == [["2001:db8:1::/48"]]
    lb.apply(config(vip()))
    assert lb.maps.acl.read() == {}


def test_the_list_reads_back(lb: Balancer) -> None:
    lb.apply(config(vip(allowed_cidrs=["192.0.2.77/24", "10.0.0.0/8"])))
    (spec,) = lb.current_vips()
    assert [str(n) for n in spec.allowed_cidrs or []] == ["10.0.0.0/8", "192.0.2.0/24"]
    assert lb.vips()["tcp://10.0.0.100:80"].flags & abi.VIP_F_ACL


def admitted(lb: Balancer, src: str, sport: int = 40000) -> list[int]:
    """The ACL epoch each way of the flow records."""
    key = flowhash.flow_key(src, VIP4, sport, 80, "tcp")
    return [p.admitted for p in lb.maps.sessions.find(key)]


def epoch(lb: Balancer, name: str = "tcp://10.0.0.100:80") -> int:
    return lb.maps.acl.word(vip_id(lb, name)) & abi.ACL_EPOCH_MASK


def test_a_hit_recorded_under_the_list_in_force_is_not_looked_up_again(
    lb: Balancer, net: Net
) -> None:
    """The way records the VIP's word; while it stands, a hit skips the trie. Shown by
    emptying the trie behind the program's back: the established flow still passes, a new
    one does not (and the word did not move, so nothing re-checks the old flow)."""
    lb.apply(config(vip(allowed_cidrs=["192.0.2.0/24"])))
    assert send(lb, net, syn(ALLOWED4)) == XdpAction.TX
    assert admitted(lb, ALLOWED4) == [epoch(lb)] and epoch(lb) != 0
    vid = vip_id(lb, "tcp://10.0.0.100:80")
    entries = [
        (lb.maps.acl.active_id(vid), n) for n in lb.maps.acl.read()[lb.maps.acl.active_id(vid)]
    ]
    lb.maps.acl.delete(entries)
    assert send(lb, net, ack(ALLOWED4)) == XdpAction.TX
    assert send(lb, net, syn(ALLOWED4, sport=40001)) == XdpAction.DROP


def test_a_flow_let_through_by_an_older_list_is_checked_against_the_new_one(
    lb: Balancer, net: Net
) -> None:
    """A -> B -> C with the flow idle during B: C is stored under A's ACL id again (the two
    ids alternate), but the word moved twice, so the way's record of A does not vouch for
    it under C. An allow-list keyed only by the id would let the flow through here."""
    first = ["192.0.2.0/24", "198.51.100.0/24"]
    lb.apply(config(vip(allowed_cidrs=first)))
    vid = vip_id(lb, "tcp://10.0.0.100:80")
    id_a = lb.maps.acl.active_id(vid)
    assert send(lb, net, syn(DENIED4)) == XdpAction.TX
    recorded = admitted(lb, DENIED4)
    lb.apply(config(vip(allowed_cidrs=[*first, "203.0.113.0/24"])))
    lb.apply(config(vip(allowed_cidrs=["192.0.2.0/24"])))
    assert lb.maps.acl.active_id(vid) == id_a and admitted(lb, DENIED4) == recorded
    assert epoch(lb) not in recorded
    assert send(lb, net, ack(DENIED4)) == XdpAction.DROP
    assert lb.acl_drops(vid) == 1


def test_a_flow_the_new_list_still_allows_is_recorded_under_it(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(allowed_cidrs=["192.0.2.0/24"])))
    assert send(lb, net, syn(ALLOWED4)) == XdpAction.TX
    before = admitted(lb, ALLOWED4)
    lb.apply(config(vip(allowed_cidrs=["192.0.2.0/25"])))
    assert admitted(lb, ALLOWED4) == before != [epoch(lb)]
    assert send(lb, net, ack(ALLOWED4)) == XdpAction.TX  # checked, allowed, re-recorded
    assert admitted(lb, ALLOWED4) == [epoch(lb)]


def test_a_word_with_no_epoch_checks_every_packet(lb: Balancer, net: Net) -> None:
    """A word whose low 24 bits are 0 is recorded as none (0), like a way Python wrote or a
    VIP without a list: such a record never vouches for a flow, even though it equals the
    word's epoch. Shown by narrowing the trie behind the program's back (the word unmoved):
    the flow recorded under epoch 0 is checked and dropped."""
    lb.apply(config(vip(allowed_cidrs=["192.0.2.0/24", "198.51.100.0/24"])))
    vid = vip_id(lb, "tcp://10.0.0.100:80")
    in_force = lb.maps.acl.active_id(vid)
    lb.maps.acl.words.set(vid, ctypes.c_uint32((1 << 24) | (in_force & 1)))
    assert epoch(lb) == 0 and lb.maps.acl.active_id(vid) == in_force
    assert send(lb, net, syn(DENIED4)) == XdpAction.TX
    assert admitted(lb, DENIED4) == [0]
    assert send(lb, net, ack(DENIED4)) == XdpAction.TX
    lb.maps.acl.delete([(in_force, ipaddress.ip_network("198.51.100.0/24"))])
    assert send(lb, net, ack(DENIED4)) == XdpAction.DROP
