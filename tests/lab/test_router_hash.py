"""The lab's router hashes like a real one (issue 12, item 7): it picks the L4 node from the
packet's 5-tuple alone. Over veth the kernel hands the client socket's skb hash to the router,
and that hash is drawn again on every SYN retransmit (net.core.txrehash), so with the
kernel's policy 1 a retransmitted SYN could change node and a flood from one raw socket
reached one node only. Seen on the wire: a packet socket on the router's fabric port records
the next hop of every packet it forwards to the VIP."""

from __future__ import annotations

import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from shoal import netns
from shoal.lab.capture import RouterTap
from shoal.lab.lab import Lab
from shoal.lab.traffic import http_get

from .conftest import FIGURES, wait_for
from .l4lb import L4Lb, create_l4_lb, l4_nodes

pytestmark = pytest.mark.netns
# Below the client's ephemeral range (32768-60999): an earlier test's connection (or its
# TIME_WAIT) can hold any port in that range, and bind() would fail.
FIRST_PORT, FLOWS = 20000, 20


@pytest.fixture(scope="module")
def lb(lab: Lab) -> Iterator[L4Lb]:
    made = create_l4_lb(lab, "router-hash", {"b1": 1, "b2": 1})
    lab.wait_stable(made.vip, l4_nodes(lab))
    yield made
    made.delete()


def tap(lab: Lab, lb: L4Lb) -> RouterTap:
    return RouterTap(lab.state.hosts["router"]["ns"], "f0", lb.vip)


def node_of_mac(lab: Lab) -> dict[str, str]:
    return {lab.state.hosts[n]["mac"]: n for n in l4_nodes(lab)}


def nft(ns: str, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "nft", *args], check=True, capture_output=True)


def test_retransmitted_syns_of_one_flow_take_one_node(lab: Lab, lb: L4Lb) -> None:
    client = lab.state.hosts["client"]
    # The client never sees the SYN-ACKs of these ports, so its kernel retransmits the SYN
    # (after 1 s, then 3 s), drawing a new socket hash each time (txrehash=1, the default).
    table = f"shoal_hash_{FIRST_PORT}"
    nft(client["ns"], "add", "table", "inet", table)
    nft(client["ns"], "add", "chain", "inet", table, "in", "{ type filter hook input priority 0; }")
    nft(
        client["ns"],
        "add",
        "rule",
        "inet",
        table,
        "in",
        "ip",
        "saddr",
        lb.vip,
        "tcp",
        "dport",
        f"{FIRST_PORT}-{FIRST_PORT + FLOWS - 1}",
        "drop",
    )
    socks: list[socket.socket] = []
    try:
        with tap(lab, lb) as seen:
            with netns.entered(client["ns"]):
                for i in range(FLOWS):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((client["ip"], FIRST_PORT + i))
                    s.connect_ex((lb.vip, 7))
                    socks.append(s)
            ports = range(FIRST_PORT, FIRST_PORT + FLOWS)
            wait_for(
                lambda: all(sum(seen.nodes_of(p).values()) >= 3 for p in ports),
                15,
                "three SYNs (two retransmits) of every flow through the router",
                interval=0.1,
            )
    finally:
        for s in socks:
            s.close()
        nft(client["ns"], "delete", "table", "inet", table)
    names = node_of_mac(lab)
    per_flow = {p: seen.nodes_of(p) for p in ports}
    changed = {p: dict(c) for p, c in per_flow.items() if len(c) > 1}
    used = Counter(names.get(next(iter(c)), "?") for c in per_flow.values())
    FIGURES["router hash: flows whose retransmitted SYN changed L4 node"] = (
        f"{len(changed)} of {FLOWS} (3 SYNs each); first SYNs per node {dict(used)}"
    )
    assert changed == {}, changed
    assert set(used) == set(l4_nodes(lab)), used


def test_many_flows_spread_over_every_node(lab: Lab, lb: L4Lb) -> None:
    flows = 100
    with tap(lab, lb) as seen, netns.entered(lab.state.hosts["client"]["ns"]):
        answered = sum(1 for _ in range(flows) if http_get(lb.vip, timeout=3))
    names = node_of_mac(lab)
    per_node = Counter(names.get(p.next_hop_mac, "?") for p in seen.syns())
    FIGURES["router hash: 100 new flows, SYNs per L4 node"] = dict(per_node)
    assert answered == flows
    nodes = l4_nodes(lab)
    assert set(per_node) == set(nodes), per_node
    assert all(per_node[n] >= flows / (3 * len(nodes)) for n in nodes), per_node


def test_spoofed_flood_from_many_sources_reaches_every_node(lab: Lab, lb: L4Lb) -> None:
    sent = 2000
    with tap(lab, lb) as seen:
        # Bounded: 2,000 spoofed SYNs at 2,000/s, at most 10 s, inside the lab's namespaces.
        flood = subprocess.run(
            [
                "ip", "netns", "exec", lab.state.hosts["client"]["ns"],
                "timeout", "10", "hping3", "-q", "-S", "-p", "80", "--rand-source",
                "-i", "u500", "-c", str(sent), lb.vip,
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        assert "packets transmitted" in flood.stderr, flood.stderr
        # The router drops martian sources (multicast, class E, loopback: about 13% of
        # random addresses); the rest it forwards. Wait until no more come.
        last = -1
        while len(seen.packets) != last:
            last = len(seen.packets)
            time.sleep(0.5)
    names = node_of_mac(lab)
    syns = seen.syns()
    per_node = Counter(names.get(p.next_hop_mac, "?") for p in syns)
    sources = len({p.src for p in syns})
    FIGURES["router hash: 2,000 spoofed SYNs, per L4 node"] = (
        f"{dict(per_node)} from {sources} sources"
    )
    nodes = l4_nodes(lab)
    assert len(syns) >= sent / 2, len(syns)
    assert set(per_node) == set(nodes), per_node
    assert all(per_node[n] >= len(syns) / (2 * len(nodes)) for n in nodes), per_node
