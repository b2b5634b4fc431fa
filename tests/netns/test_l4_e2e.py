"""Client -> XDP load balancer -> 3 backends (tc decap) with real TCP inside namespaces."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from shoal import netns
from shoal.dataplane.balancer import Balancer
from shoal.lab.l4mini import VIP4, VIP6, L4MiniLab
from shoal.lab.traffic import EchoSessions, http_requests

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def lab() -> Iterator[L4MiniLab]:
    with L4MiniLab(prefix=f"st{os.getpid()}") as lab:
        yield lab


def nft_counts(lab: L4MiniLab) -> dict[str, int]:
    out = lab.topo.run(lab.hosts["client"].ns, "nft", "-j", "list", "table", "netdev", "dsr")
    counts = {}
    for item in json.loads(out)["nftables"]:
        rule = item.get("rule")
        if rule:
            for expr in rule["expr"]:
                if "counter" in expr:
                    counts[rule.get("comment", "")] = expr["counter"]["packets"]
    return counts


def test_http_spreads_over_all_backends_and_replies_bypass_the_lb(lab: L4MiniLab) -> None:
    client = lab.hosts["client"]
    lb_mac = lab.hosts["lb"].mac
    lab.topo.run(
        client.ns,
        "nft",
        f"""
table netdev dsr {{
  chain in {{
    type filter hook ingress device eth0 priority 0;
    ip saddr {VIP4} ether saddr {lb_mac} counter comment "via-lb"
    ip saddr {VIP4} ether saddr != {lb_mac} counter comment "direct"
  }}
}}""",
    )
    lab.lb.apply(lab.config())
    with netns.entered(client.ns):
        result = http_requests(VIP4, 150, timeout=2, deadline=60)
    assert result.failed == 0, result.errors
    assert set(result.by_backend) == {"b1", "b2", "b3"}
    assert min(result.by_backend.values()) >= 20  # 150 flows, Maglev spreads them
    sources = nft_counts(lab)
    assert sources["via-lb"] == 0 and sources["direct"] >= 150 * 3
    counters = lab.lb.counters()
    assert counters["tx"] + counters["pass_no_neigh"] >= 150 * 3
    assert sum(lab.decap.counters().values()) >= 150 * 3


def test_ipv6_vip(lab: L4MiniLab) -> None:
    lab.lb.apply(lab.config(family=6))
    with netns.entered(lab.hosts["client"].ns):
        result = http_requests(VIP6, 60, timeout=2, deadline=60)
    assert result.failed == 0, result.errors
    assert set(result.by_backend) == {"b1", "b2", "b3"}
    assert lab.decap.counters()["ip6ip6"] >= 60 * 3


def test_gue_encapsulation(lab: L4MiniLab) -> None:
    lab.lb.apply(lab.config(encap="gue"))
    before = lab.decap.counters()["gue4"]
    with netns.entered(lab.hosts["client"].ns):
        result = http_requests(VIP4, 60, timeout=2, deadline=60)
    assert result.failed == 0, result.errors
    assert set(result.by_backend) == {"b1", "b2", "b3"}
    assert lab.decap.counters()["gue4"] - before >= 60 * 3


def test_reloading_the_program_under_traffic_breaks_nothing(lab: L4MiniLab) -> None:
    lab.lb.apply(lab.config())
    client = lab.hosts["client"]
    with EchoSessions(client.ns, VIP4, 30, interval=0.05) as echo:
        time.sleep(0.3)
        for _ in range(3):
            # What an agent restart or an upgrade does: load again on the pinned maps, attach.
            with Balancer.load(
                f"{lab.prefix}-lb",
                session_cache_size=lab.session_cache_size,
                max_vips=256,
                max_backends=4096,
            ) as fresh:
                fresh.attach("eth0", netns_name=lab.hosts["lb"].ns, mode="native")
            with netns.entered(client.ns):
                result = http_requests(VIP4, 20, timeout=2, deadline=30)
            assert result.failed == 0, result.errors
        time.sleep(0.3)
        rounds = echo.rounds
    assert echo.broken == {}
    assert rounds >= 10
