"""The data plane against an attacker on the client network (items 5 and 6 of issue 9), in a
one-node L4 lab: real packets inside namespaces, nothing leaves them.

- a client outside a listener's allowed_cidrs, through the load balancer, and with a flow it
  opened before the list was narrowed;
- tunnels sent straight to a backend: from a foreign source (bypassing the load balancer and
  its list), from a spoofed L4 source to an address that is no local VIP (the backend as a
  relay), and as outer fragments."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from shoal import netns
from shoal.lab.l4mini import SUBNET4, SUBNET6, VIP4, VIP6, L4MiniLab

pytestmark = pytest.mark.netns
ATTACKER, ATTACKER6 = f"{SUBNET4}.66", f"{SUBNET6}66"  # second addresses on the client host
L4_SOURCE = "172.16.0.9"  # inside the L4 tier's encapsulation sources (Settings default)


@pytest.fixture(scope="module")
def lab() -> Iterator[L4MiniLab]:
    with L4MiniLab(prefix=f"sec{os.getpid()}", backends=2) as lab:
        ns = lab.hosts["client"].ns
        lab.topo.run(ns, "ip", "addr", "add", f"{ATTACKER}/24", "dev", "eth0")
        lab.topo.run(ns, "ip", "addr", "add", f"{ATTACKER6}/64", "dev", "eth0", "nodad")
        yield lab


@pytest.fixture
def listed(lab: L4MiniLab) -> L4MiniLab:
    """The tenant's VIP allows only the real client."""
    lab.lb.apply(lab.config(allowed_cidrs=[f"{lab.hosts['client'].ip4}/32"]))
    return lab


def connect(lab: L4MiniLab, source: str, timeout: float) -> socket.socket | None:
    with netns.entered(lab.hosts["client"].ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.bind((source, 0))
            s.connect((VIP4, 7))
            return s
        except OSError:
            s.close()
            return None


def echo(s: socket.socket) -> bool:
    """A round trip of our own line: the server's greeting (sent on connect) or an earlier
    reply still in the buffer must not count as this one's answer."""
    token = f"ping-{time.monotonic_ns()}\n".encode()
    try:
        s.sendall(token)
        got = b""
        while token not in got:
            chunk = s.recv(4096)
            if not chunk:
                return False
            got += chunk
        return True
    except OSError:
        return False


class Sniffer:
    """Frames arriving on the client's eth0 (an AF_PACKET socket), read for a bounded time."""

    def __init__(self, lab: L4MiniLab) -> None:
        with netns.entered(lab.hosts["client"].ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            self.sock.bind(("eth0", 0))
        self.sock.settimeout(0.05)

    def synacks_from_vip(self, seconds: float, vip: str = VIP4) -> int:
        seen, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                frame = self.sock.recv(65535)
            except TimeoutError:
                continue
            pkt = Ether(frame)
            ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
            if ip is not None and TCP in pkt and ip.src == vip and pkt[TCP].flags == "SA":
                seen += 1
        return seen

    def close(self) -> None:
        self.sock.close()


def send_ip(lab: L4MiniLab, packet: bytes, dst: str) -> None:
    """Sends a whole IPv4 packet (our own outer header, spoofed source included) from the
    client's namespace."""
    with (
        netns.entered(lab.hosts["client"].ns),
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as s,
    ):
        s.sendto(packet, (dst, 0))


def inner_syn(sport: int, dst: str = VIP4) -> IP:
    return IP(src=ATTACKER, dst=dst) / TCP(sport=sport, dport=7, flags="S", seq=1000)


def test_a_client_outside_the_list_gets_no_connection(listed: L4MiniLab) -> None:
    before = listed.lb.counters()
    sessions = len(listed.lb.maps.sessions)
    assert connect(listed, ATTACKER, timeout=0.5) is None
    after = listed.lb.counters()
    assert after["drop_acl"] > before["drop_acl"]
    assert after["new_flows"] == before["new_flows"]  # no Maglev, no session for it
    assert len(listed.lb.maps.sessions) == sessions
    ok = connect(listed, listed.hosts["client"].ip4, timeout=2)
    assert ok is not None and echo(ok)
    ok.close()


def test_a_narrowed_list_ends_a_flow_opened_before(lab: L4MiniLab) -> None:
    lab.lb.apply(lab.config(allowed_cidrs=[f"{SUBNET4}.0/24"]))
    s = connect(lab, ATTACKER, timeout=1)
    assert s is not None and echo(s)
    lab.lb.apply(lab.config(allowed_cidrs=[f"{lab.hosts['client'].ip4}/32"]))
    s.settimeout(0.5)
    assert not echo(s)  # its session-cache entry does not carry it past the new list
    s.close()


def test_a_tunnel_straight_to_a_backend_does_not_bypass_the_list(listed: L4MiniLab) -> None:
    """IPIP from the attacker to a backend, inner SYN to the VIP: without the source check the
    backend would strip it and answer, skipping the load balancer and allowed_cidrs."""
    b1 = listed.backend_hosts[0]
    before = listed.decap.counters()
    sniffer = Sniffer(listed)
    try:
        for sport in range(41000, 41005):
            outer = IP(src=ATTACKER, dst=b1.ip4, proto=4) / inner_syn(sport)
            send_ip(listed, bytes(outer), b1.ip4)
        assert sniffer.synacks_from_vip(1.0) == 0
    finally:
        sniffer.close()
    after = listed.decap.counters()
    assert after["pass_foreign_src"] - before["pass_foreign_src"] == 5
    assert after["ipip"] == before["ipip"]


def test_an_ipv6_tunnel_straight_to_a_backend_is_not_stripped(lab: L4MiniLab) -> None:
    client = lab.hosts["client"]
    lab.lb.apply(lab.config(family=6, allowed_cidrs=[f"{client.ip6}/128"]))
    b1 = lab.backend_hosts[0]
    before = lab.decap.counters()
    sniffer = Sniffer(lab)
    try:
        with (
            netns.entered(client.ns),
            socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_IPV6) as s,
        ):
            s.bind((ATTACKER6, 0))
            for sport in range(44000, 44005):  # the kernel adds the outer IPv6 header (nh 41)
                inner = IPv6(src=ATTACKER6, dst=VIP6) / TCP(sport=sport, dport=7, flags="S")
                s.sendto(bytes(inner), (b1.ip6, 0))
        assert sniffer.synacks_from_vip(1.0, VIP6) == 0
    finally:
        sniffer.close()
    after = lab.decap.counters()
    assert after["pass_foreign_src"] - before["pass_foreign_src"] == 5
    assert after["ip6ip6"] == before["ip6ip6"]


def test_a_spoofed_l4_source_cannot_use_a_backend_as_a_relay(listed: L4MiniLab) -> None:
    """Even from an allowed L4 source, a tunnel to an address that is no local VIP (here the
    load balancer's own address) is left whole to the kernel, which has no tunnel for it."""
    b1 = listed.backend_hosts[0]
    before = listed.decap.counters()
    target = listed.hosts["lb"].ip4
    outer = IP(src=L4_SOURCE, dst=b1.ip4, proto=4) / inner_syn(42000, dst=target)
    send_ip(listed, bytes(outer), b1.ip4)
    time.sleep(0.2)
    after = listed.decap.counters()
    assert after["pass_not_local"] - before["pass_not_local"] == 1
    assert after["ipip"] == before["ipip"]


def test_outer_fragments_are_dropped_not_mangled(listed: L4MiniLab) -> None:
    b1 = listed.backend_hosts[0]
    before = listed.decap.counters()
    sniffer = Sniffer(listed)
    try:
        inner = bytes(inner_syn(43000) / (b"x" * 64))
        first = IP(src=L4_SOURCE, dst=b1.ip4, proto=4, id=77, flags="MF") / inner[:48]
        rest = IP(src=L4_SOURCE, dst=b1.ip4, proto=4, id=77, frag=6) / inner[48:]
        send_ip(listed, bytes(first), b1.ip4)
        send_ip(listed, bytes(rest), b1.ip4)
        assert sniffer.synacks_from_vip(0.5) == 0
    finally:
        sniffer.close()
    after = listed.decap.counters()
    assert after["drop_fragment"] - before["drop_fragment"] == 2
    assert after["ipip"] == before["ipip"]


def test_a_real_l4_tunnel_still_works(listed: L4MiniLab) -> None:
    """The control case: the checks above refuse the attacker, not the load balancer."""
    before = listed.decap.counters()["ipip"]
    s = connect(listed, listed.hosts["client"].ip4, timeout=2)
    assert s is not None and echo(s)
    s.close()
    assert listed.decap.counters()["ipip"] > before
