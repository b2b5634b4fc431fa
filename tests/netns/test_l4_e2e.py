"""Client -> XDP load balancer -> 3 backends (tc decap) with real TCP inside namespaces."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shoal import netns
from shoal.lab.l4mini import VIP4, L4MiniLab
from shoal.lab.traffic import http_requests

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def lab() -> Iterator[L4MiniLab]:
    with L4MiniLab(prefix=f"st{os.getpid()}") as lab:
        yield lab


def reply_sources(lab: L4MiniLab) -> dict[str, int]:
    """Counts, at the client, replies from the VIP by the MAC that sent them (nftables)."""
    out = lab.topo.run(lab.hosts["client"].ns, "nft", "-j", "list", "table", "netdev", "dsr")
    import json

    counts = {}
    for item in json.loads(out)["nftables"]:
        rule = item.get("rule")
        if rule:
            comment = rule.get("comment", "")
            for expr in rule["expr"]:
                if "counter" in expr:
                    counts[comment] = expr["counter"]["packets"]
    return counts


def test_http_through_the_vip_spreads_over_all_backends_and_replies_bypass_the_lb(lab):
    client = lab.hosts["client"]
    lb_mac = lab.hosts["lb"].mac
    nft = f"""
table netdev dsr {{
  chain in {{
    type filter hook ingress device eth0 priority 0;
    ip saddr {VIP4} ether saddr {lb_mac} counter comment "via-lb"
    ip saddr {VIP4} ether saddr != {lb_mac} counter comment "direct"
  }}
}}"""
    lab.topo.run(client.ns, "nft", nft)
    lab.lb.apply(lab.config())
    with netns.entered(client.ns):
        result = http_requests(VIP4, 150, timeout=2, deadline=60)
    assert result.failed == 0, result.errors
    assert set(result.by_backend) == {"b1", "b2", "b3"}
    assert min(result.by_backend.values()) >= 20  # 150 flows, Maglev spreads them
    sources = reply_sources(lab)
    assert sources["via-lb"] == 0 and sources["direct"] >= 150 * 3
    counters = lab.lb.counters()
    assert counters["tx"] + counters["pass_no_neigh"] >= 150 * 3
    assert sum(lab.decap.counters().values()) >= 150 * 3
