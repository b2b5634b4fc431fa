"""Second chance through BPF_PROG_TEST_RUN (repeat=1): the load balancer names a flow's previous
owner in the tunnel exactly when it should, in the on-wire form of shoal_abi.h, for IPIP, IPv6
and GUE; the backends' decap program sends such a packet on to that owner when no local socket
has the flow (listeners excluded), at most once; and with SYN silence on, a SYN nobody listens
for is dropped instead of answered."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP, UDP, IPOption
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from shoal import netns
from shoal.dataplane import abi, packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.decap import Decap
from shoal.dataplane.testrun import XdpAction, run_prog, run_xdp

from .harness import BACKENDS4, BACKENDS6, LB_MAC, VIP4, VIP6, Net, config, vip

pytestmark = pytest.mark.bpf
CLIENT4, CLIENT6 = "192.0.2.10", "2001:db8::10"
TO_LB = bytes.fromhex(LB_MAC.replace(":", ""))
TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = 0, 2, 7
ETH = 14


def ack(src: str, sport: int, dst: str, flags: int = packets.TCP_ACK) -> bytes:
    return packets.tcp_frame(src, dst, sport, 80, flags, b"data", dmac=TO_LB)


def chance_of(frame: bytes) -> tuple[str, str, int] | None:
    """(outer destination, previous owner, flags) when the frame carries the option."""
    if frame[12:14] == b"\x08\x00":
        ihl = frame[ETH] & 0xF
        if ihl == 5:
            return None
        assert ihl == 7
        opt = abi.Chance4.from_buffer_copy(frame[ETH + 20 : ETH + 28])
        assert (opt.type, opt.len) == (abi.CHANCE_OPT4, 8)
        dst = socket.inet_ntoa(frame[ETH + 16 : ETH + 20])
        return dst, socket.inet_ntoa(opt.prev.to_bytes(4, "little")), opt.flags
    if frame[ETH + 6] != 60:
        return None
    opt6 = abi.Chance6.from_buffer_copy(frame[ETH + 40 : ETH + 64])
    assert (opt6.hdrlen, opt6.padn_type, opt6.padn_len) == (2, 1, 0)
    assert (opt6.type, opt6.len) == (abi.CHANCE_OPT6, 18)
    dst = str(ipaddress.IPv6Address(frame[ETH + 24 : ETH + 40]))
    prev = str(ipaddress.IPv6Address(bytes(opt6)[8:24]))
    return dst, prev, opt6.flags


def drained(addresses: list[str], which: str) -> list[dict]:
    return [{"address": a, "weight": 0 if a == which else 1} for a in addresses]


def send(lb: Balancer, net: Net, frame: bytes) -> bytes:
    res = run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex)
    assert res.action == XdpAction.TX
    return res.frame


def picks(lb: Balancer, client: str, vip_addr: str, ports: range) -> dict[int, str]:
    return {p: lb.trace(client, p, vip_addr, 80, "tcp").backend or "" for p in ports}


# (table size before, after): within a class (lb/maglev.h), within class 0 (any size), and
# across classes both ways, so the previous table is read from another class's map.
TABLE_SIZES = [(251, 251), (13, 13), (251, 1021), (1021, 13), (13, 251)]


@pytest.mark.parametrize(("size_before", "size_after"), TABLE_SIZES)
def test_a_flow_whose_slot_changed_names_its_previous_owner(
    lb: Balancer, net: Net, size_before: int, size_after: int
) -> None:
    pool = list(BACKENDS4)[:3]
    lb.apply(config(vip(backends=len(pool), table_size=size_before)))
    before = picks(lb, CLIENT4, VIP4, range(6000, 6200))
    lb.apply(config(vip(backends=drained(pool, pool[1]), table_size=size_after)))
    after = picks(lb, CLIENT4, VIP4, range(6000, 6200))
    moved = {p for p in before if before[p] != after[p]}
    if size_before == size_after:
        # Mostly the drained backend's flows (Maglev moves a few others too).
        assert moved and sum(before[p] == pool[1] for p in moved) > len(moved) // 2
    else:  # a new size deals the slots again: many flows move, to every backend left
        assert len(moved) > len(before) // 4
    for p in before:
        frame = ack(CLIENT4, p, VIP4)
        out = send(lb, net, frame)
        eth = Ether(out)
        assert eth[IP].dst == after[p]
        got = chance_of(out)
        if p in moved:
            assert got == (after[p], before[p], 0)
            assert eth[IP].len == len(frame) - ETH + 28
            resum = IP(bytes(eth[IP]))
            del resum.chksum
            assert IP(bytes(resum)).chksum == eth[IP].chksum
            assert bytes(eth[IP])[28 : 28 + len(frame) - ETH] == frame[ETH:]
            # No entry: the flow's next packet must carry its previous owner again.
            traced = lb.trace(CLIENT4, p, VIP4, 80, "tcp")
            assert traced.via == "maglev" and traced.previous == before[p]
        else:
            assert got is None
            assert lb.trace(CLIENT4, p, VIP4, 80, "tcp").via == "session"
    assert lb.counters()["chance"] == len(moved)


def test_syns_hits_and_a_down_previous_owner_carry_nothing(lb: Balancer, net: Net) -> None:
    pool = list(BACKENDS4)[:3]
    lb.apply(config(vip(backends=len(pool))))
    before = picks(lb, CLIENT4, VIP4, range(7000, 7200))
    on_b = [p for p, b in before.items() if b == pool[1]]
    hit = on_b[0]
    send(lb, net, packets.tcp_frame(CLIENT4, VIP4, hit, 80, packets.TCP_SYN, dmac=TO_LB))
    lb.apply(config(vip(backends=drained(pool, pool[1]))))
    # A cached flow goes to its backend, without the option.
    assert chance_of(send(lb, net, ack(CLIENT4, hit, VIP4))) is None
    for p in on_b[1:]:
        syn = packets.tcp_frame(CLIENT4, VIP4, p, 80, packets.TCP_SYN, dmac=TO_LB)
        assert chance_of(send(lb, net, syn)) is None
    # The previous owner fails: nothing to send its flows on to.
    lb.apply(config(vip(backends=len(pool))))
    healthy = picks(lb, CLIENT4, VIP4, range(7200, 7400))
    down = [{"address": a, "healthy": a != pool[1]} for a in pool]
    lb.apply(config(vip(backends=down)))
    on_down = [p for p, b in healthy.items() if b == pool[1]]
    assert on_down
    for p in range(7200, 7400):
        got = chance_of(send(lb, net, ack(CLIENT4, p, VIP4)))
        assert got is None or got[1] != pool[1]
        if p in on_down:
            assert got is None


def test_second_chance_can_be_switched_off(lb: Balancer, net: Net) -> None:
    pool = list(BACKENDS4)[:3]
    lb.apply(config(vip(backends=len(pool)), second_chance=False))
    lb.apply(config(vip(backends=drained(pool, pool[0])), second_chance=False))
    outs = [send(lb, net, ack(CLIENT4, p, VIP4)) for p in range(8000, 8100)]
    assert all(chance_of(o) is None for o in outs)
    assert all(lb.trace(CLIENT4, p, VIP4, 80, "tcp").previous is None for p in range(8000, 8100))
    assert lb.counters()["chance"] == 0


@pytest.mark.parametrize(
    ("family", "encap"), [(4, "gue"), (6, "ipip"), (6, "gue")], ids=["gue4", "ip6ip6", "gue6"]
)
def test_option_in_ipv6_and_gue(lb: Balancer, net: Net, family: int, encap: str) -> None:
    pool = list(BACKENDS4 if family == 4 else BACKENDS6)[:3]
    address, client = (VIP4, CLIENT4) if family == 4 else (VIP6, CLIENT6)
    spec = {"address": address, "family": family, "encap": encap}
    lb.apply(config(vip(backends=len(pool), **spec), gue_port=7777))
    before = picks(lb, client, address, range(9000, 9150))
    lb.apply(config(vip(backends=drained(pool, pool[2]), **spec), gue_port=7777))
    moved = [p for p, b in before.items() if b == pool[2]]
    assert moved
    for p in moved:
        frame = ack(client, p, address)
        out = send(lb, net, frame)
        dst, prev, flags = chance_of(out) or ("", "", -1)
        assert prev == pool[2] and flags == 0 and dst != prev
        assert ipaddress.ip_address(dst) == ipaddress.ip_address(
            lb.trace(client, p, address, 80, "tcp").backend
        )
        eth = Ether(out)
        if family == 4:
            assert eth[IP].len == len(frame) - ETH + 28 + 8
            udp = UDP(bytes(eth[IP])[28:])
        else:
            assert eth[IPv6].plen == len(frame) - ETH + 24 + (8 if encap == "gue" else 0)
            nexthdr = out[ETH + 40]
            assert nexthdr == (17 if encap == "gue" else 41)
            udp = UDP(out[ETH + 64 :]) if encap == "gue" else None
        if udp is not None:
            assert udp.dport == 7777 and udp.len == len(frame) - ETH + 8
            assert bytes(udp.payload)[: len(frame) - ETH] == frame[ETH:]
        else:
            assert out[ETH + 64 :][: len(frame) - ETH] == frame[ETH:]


# ---- the backend side ---------------------------------------------------------------------

VIP_PORT, CURRENT4, PREV4, CURRENT6, PREV6 = 8080, "10.1.0.1", "10.1.0.2", "fd01::1", "fd01::2"


@pytest.fixture(scope="module")
def decap_ns(net: Net) -> Iterator[str]:
    """The sandbox namespace (entered on this thread) holding the VIPs on lo."""
    netns.run(["ip", "link", "set", "lo", "up"], net.ns)
    netns.run(["ip", "addr", "replace", f"{VIP4}/32", "dev", "lo"], net.ns)
    netns.run(["ip", "addr", "replace", f"{VIP6}/128", "dev", "lo", "nodad"], net.ns)
    yield net.ns
    netns.run(["ip", "addr", "del", f"{VIP4}/32", "dev", "lo"], net.ns, check=False)
    netns.run(["ip", "addr", "del", f"{VIP6}/128", "dev", "lo"], net.ns, check=False)


PEERS = ["10.1.0.0/24", "fd01::/64"]


@pytest.fixture
def decap(decap_ns: str) -> Iterator[Decap]:
    d = Decap(gue_port=6080, local_vips=[f"{VIP4}/32", f"{VIP6}/128"], peers=PEERS)
    yield d
    d.close()


@pytest.fixture
def listener(decap_ns: str) -> Iterator[dict[int, socket.socket]]:
    """Listening sockets on the VIP port, per family (created in the sandbox namespace)."""
    socks = {}
    for family, af, host in ((4, socket.AF_INET, VIP4), (6, socket.AF_INET6, VIP6)):
        s = socket.socket(af, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, VIP_PORT))
        s.listen(8)
        socks[family] = s
    yield socks
    for s in socks.values():
        s.close()


def inner_tcp(family: int, sport: int, flags: str) -> IP | IPv6:
    l3 = IP(src=VIP4, dst=VIP4) if family == 4 else IPv6(src=VIP6, dst=VIP6)
    return l3 / TCP(sport=sport, dport=VIP_PORT, flags=flags, seq=1000, ack=2000) / b"x"


def tunnel(family: int, inner: IP | IPv6, gue: bool = False, flags: int = 0) -> bytes:
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    udp = UDP(sport=49152, dport=6080) if gue else None
    if family == 4:
        opt = IPOption(bytes([abi.CHANCE_OPT4, 8, flags, 0]) + socket.inet_aton(PREV4))
        outer = IP(src="172.16.0.9", dst=CURRENT4, options=[opt], proto=17 if gue else 4)
        return bytes(eth / outer / (udp / inner if udp else inner))
    nxt = 17 if gue else (4 if isinstance(inner, IP) else 41)
    hdr = bytes([nxt, 2, 1, 0, abi.CHANCE_OPT6, 18, flags, 0])
    hdr += ipaddress.IPv6Address(PREV6).packed
    outer6 = IPv6(src="fd00:5ea1::9", dst=CURRENT6, nh=60)
    return bytes(eth / outer6 / Raw(hdr) / (udp / inner if udp else inner))


def run_tc(d: Decap, frame: bytes) -> tuple[int, bytes]:
    res = run_prog(d.obj.prog_fd("shoal_decap"), frame)
    return res.action_value, res.frame


CASES = [(4, False), (4, True), (6, False), (6, True)]
CASE_IDS = ["ipip", "gue4", "ip6ip6", "gue6"]


@pytest.mark.parametrize(("family", "gue"), CASES, ids=CASE_IDS)
def test_no_socket_sends_the_packet_on_once(decap: Decap, family: int, gue: bool) -> None:
    frame = tunnel(family, inner_tcp(family, 50001, "A"), gue)
    action, out = run_tc(decap, frame)
    assert action == TC_ACT_REDIRECT
    assert len(out) == len(frame)
    assert chance_of(out) == (
        (PREV4, PREV4, abi.CHANCE_F_REDIRECTED)
        if family == 4
        else (PREV6, PREV6, abi.CHANCE_F_REDIRECTED)
    )
    if family == 4:
        resum = IP(out[ETH:])
        del resum.chksum
        assert IP(bytes(resum)).chksum == IP(out[ETH:]).chksum
    # Only the destination and the flag changed: the rest travels as it came.
    diff = [i for i in range(len(frame)) if frame[i] != out[i]]
    assert diff and len(diff) <= 19
    # At the previous owner (no socket there either) the flag stops it: delivered.
    before = decap.counters()
    action, stripped = run_tc(decap, out)
    assert action == TC_ACT_OK and chance_of(stripped) is None
    after = decap.counters()
    assert after["chance_last"] == before["chance_last"] + 1
    assert after["chance_redirect"] == before["chance_redirect"]
    assert after["chance_redirect"] >= 1


@pytest.mark.parametrize(("family", "gue"), CASES, ids=CASE_IDS)
def test_a_local_connection_keeps_its_packets(
    decap: Decap, listener: dict[int, socket.socket], family: int, gue: bool
) -> None:
    af, host = (socket.AF_INET, VIP4) if family == 4 else (socket.AF_INET6, VIP6)
    client = socket.socket(af, socket.SOCK_STREAM)
    client.connect((host, VIP_PORT))
    served, _ = listener[family].accept()
    try:
        sport = client.getsockname()[1]
        before = decap.counters()
        action, out = run_tc(decap, tunnel(family, inner_tcp(family, sport, "A"), gue))
        assert action == TC_ACT_OK
        assert out[ETH:].startswith(bytes(inner_tcp(family, sport, "A"))[:20])
        assert decap.counters()["chance_local"] == before["chance_local"] + 1
        # A listener alone is no owner: another port of the same client is sent on.
        action, _ = run_tc(decap, tunnel(family, inner_tcp(family, sport + 1, "A"), gue))
        assert action == TC_ACT_REDIRECT
    finally:
        client.close()
        served.close()


def test_syns_and_switched_off_decap_are_delivered(decap_ns: str) -> None:
    d = Decap(gue_port=6080, local_vips=[f"{VIP4}/32"], peers=PEERS, second_chance=False)
    try:
        assert run_tc(d, tunnel(4, inner_tcp(4, 50002, "A")))[0] == TC_ACT_OK
    finally:
        d.close()
    d = Decap(gue_port=6080, local_vips=[f"{VIP4}/32"], peers=PEERS)
    try:
        assert run_tc(d, tunnel(4, inner_tcp(4, 50003, "S")))[0] == TC_ACT_OK
        assert d.counters()["chance_redirect"] == 0
    finally:
        d.close()


@pytest.mark.parametrize("family", [4, 6])
def test_a_syn_nobody_listens_for_is_dropped_when_asked(
    decap_ns: str, family: int, listener: dict[int, socket.socket]
) -> None:
    d = Decap(gue_port=6080, local_vips=[f"{VIP4}/32", f"{VIP6}/128"], syn_needs_listener=True)
    plain = Decap(gue_port=6080, local_vips=[f"{VIP4}/32", f"{VIP6}/128"])
    try:
        l3 = IP(src=CLIENT4, dst=VIP4) if family == 4 else IPv6(src=CLIENT6, dst=VIP6)
        outer = (
            IP(src="172.16.0.9", dst=CURRENT4, proto=4)
            if family == 4
            else IPv6(src="fd00:5ea1::9", dst=CURRENT6, nh=41)
        )
        eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        to_listener = bytes(eth / outer / l3 / TCP(sport=40000, dport=VIP_PORT, flags="S"))
        to_nobody = bytes(eth / outer / l3 / TCP(sport=40000, dport=VIP_PORT + 1, flags="S"))
        assert run_tc(d, to_listener)[0] == TC_ACT_OK
        assert run_tc(d, to_nobody)[0] == TC_ACT_SHOT
        assert d.counters()["drop_no_listener"] == 1
        # Without the flag (backends), the kernel answers as it always did.
        assert run_tc(plain, to_nobody)[0] == TC_ACT_OK
        # Non-SYN packets are not this check's business.
        ack_nobody = bytes(eth / outer / l3 / TCP(sport=40000, dport=VIP_PORT + 1, flags="A"))
        assert run_tc(d, ack_nobody)[0] == TC_ACT_OK
    finally:
        d.close()
        plain.close()


@pytest.mark.parametrize(("family", "gue"), CASES, ids=CASE_IDS)
def test_a_forged_previous_owner_cannot_make_the_host_a_relay(
    decap_ns: str, family: int, gue: bool
) -> None:
    """An attacker who gets a tunnel past the source check names any address as the previous
    owner: outside the peer prefixes it is ignored (delivered here, where the kernel answers
    as it would without second chance). Without peers nothing is ever sent on."""
    for peers in (["10.9.0.0/16", "fd09::/64"], []):
        d = Decap(gue_port=6080, local_vips=[f"{VIP4}/32", f"{VIP6}/128"], peers=peers)
        try:
            frame = tunnel(family, inner_tcp(family, 50010, "A"), gue)
            action, out = run_tc(d, frame)
            assert action == TC_ACT_OK and chance_of(out) is None  # stripped, not sent on
            counters = d.counters()
            assert counters["chance_foreign"] == 1 and counters["chance_redirect"] == 0
        finally:
            d.close()


def test_a_node_that_starts_mid_drain_knows_the_drained_members_slots(
    lb: Balancer, net: Net
) -> None:
    """A fresh L4 node (no history) that first sees a VIP while a member drains: the previous
    table is the one from before the drain, as on the nodes that saw the drain begin."""
    pool = list(BACKENDS4)[:3]
    seen_start = Balancer.fake()
    seen_start.apply(config(vip(backends=len(pool))))
    before = picks(seen_start, CLIENT4, VIP4, range(9500, 9700))
    lb.apply(config(vip(backends=drained(pool, pool[1]))))
    on_drained = [p for p, b in before.items() if b == pool[1]]
    assert on_drained
    for p in on_drained:
        got = chance_of(send(lb, net, ack(CLIENT4, p, VIP4)))
        assert got is not None and got[1] == pool[1]
    # Nothing draining: nothing to seed (a table change later fills the history as usual).
    lb.apply(config(vip(address="10.0.0.101", backends=len(pool))))
    (state,) = lb.vips().values()
    assert lb.maps.tables.read_previous(state.vip_id) is None
