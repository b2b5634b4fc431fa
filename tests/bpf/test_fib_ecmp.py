"""The FIB lookup carries the outer packet's fields (source, protocol, GUE ports, flow label),
so with fib_per_flow an ECMP route towards backends spreads flows over its paths, as the
kernel's own multipath hash would (net.ipv4.fib_multipath_hash_policy)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from scapy.layers.l2 import Ether

from shoal import netns
from shoal.dataplane import clock, packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.testrun import XdpAction, run_xdp

from .harness import BACKENDS4, BACKENDS6, LB_MAC, VIP4, VIP6, Net, config, vip

pytestmark = pytest.mark.bpf
TO_LB = bytes.fromhex(LB_MAC.replace(":", ""))
FAR4, FAR6 = "10.2.0.5", "fd02::5"  # behind two equal-cost next hops
HOPS4, HOPS6 = list(BACKENDS4)[:2], list(BACKENDS6)[:2]


def sysctl(name: str, value: str | None = None) -> str:
    if value is None:
        return str(netns.run(["sysctl", "-n", name]).stdout).strip()
    netns.run(["sysctl", "-qw", f"{name}={value}"])
    return value


@pytest.fixture
def ecmp(net: Net) -> Iterator[None]:
    """Two-way multipath routes in the sandbox (removed afterwards)."""
    saved = {n: sysctl(n) for n in ("net.ipv4.fib_multipath_hash_policy",)}
    hops4 = [a for h in HOPS4 for a in ("nexthop", "via", h, "dev", "lb0")]
    hops6 = [a for h in HOPS6 for a in ("nexthop", "via", h, "dev", "lb0")]
    netns.run(["ip", "route", "replace", "10.2.0.0/24", *hops4])
    netns.run(["ip", "-6", "route", "replace", "fd02::/64", *hops6])
    try:
        yield
    finally:
        netns.run(["ip", "route", "del", "10.2.0.0/24"])
        netns.run(["ip", "-6", "route", "del", "fd02::/64"])
        for n, v in saved.items():
            sysctl(n, v)


def next_hops(lb: Balancer, net: Net, client: str, vip_addr: str, flows: int = 64) -> set[str]:
    macs = set()
    for sport in range(20000, 20000 + flows):
        res = run_xdp(
            lb.prog_fd,
            packets.tcp_frame(client, vip_addr, sport, 80, dmac=TO_LB),
            ingress_ifindex=net.ifindex,
        )
        assert res.action in (XdpAction.TX, XdpAction.REDIRECT)
        macs.add(Ether(res.frame).dst)
    return macs


def test_ipip_flows_spread_over_ecmp_paths(lb: Balancer, net: Net, ecmp: None) -> None:
    sysctl("net.ipv4.fib_multipath_hash_policy", "0")  # L3: the per-flow outer source
    lb.apply(config(vip(backends=[{"address": FAR4}]), fib_per_flow=True))
    assert next_hops(lb, net, "192.0.2.10", VIP4) == {BACKENDS4[h] for h in HOPS4}


def test_gue_flows_spread_by_their_ports(lb: Balancer, net: Net, ecmp: None) -> None:
    sysctl("net.ipv4.fib_multipath_hash_policy", "1")  # L4: the GUE source port
    lb.apply(
        config(
            vip(backends=[{"address": FAR4}], encap="gue"),
            fib_per_flow=True,
            encap_source_v4="172.16.0.1/32",  # one outer source: only the ports differ
        )
    )
    assert next_hops(lb, net, "192.0.2.10", VIP4) == {BACKENDS4[h] for h in HOPS4}


def test_ipv6_flows_spread_by_their_flow_label(lb: Balancer, net: Net, ecmp: None) -> None:
    lb.apply(config(vip(VIP6, family=6, backends=[{"address": FAR6}]), fib_per_flow=True))
    macs = next_hops(lb, net, "2001:db8::10", VIP6)
    assert macs == {BACKENDS6[h] for h in HOPS6}


def test_the_default_keeps_one_cached_next_hop_per_backend(
    lb: Balancer, net: Net, ecmp: None
) -> None:
    lb.apply(config(vip(backends=[{"address": FAR4}])))
    # New flows refresh an entry older than a second: a slow machine (an emulated VM) may
    # cross that between flows, so age entries out only after an hour here.
    cfg = lb.maps.config.get(0)
    cfg.nh_max_age = clock.to_jiffies(3600)
    lb.maps.config.set(0, cfg)
    assert len(next_hops(lb, net, "192.0.2.10", VIP4)) == 1
