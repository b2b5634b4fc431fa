"""The L4 exporter over real traffic: an XDP balancer in namespaces, HTTP requests from the
client, and the agent's /metrics listener read before and after (the default run's light
check of what the lab's Prometheus test does with the whole system)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shoal import netns
from shoal.agents.l4.metrics import L4Collector
from shoal.agents.metrics import MetricsServer, agent_registry
from shoal.dataplane.balancer import Balancer
from shoal.lab.l4mini import VIP4, L4MiniLab
from shoal.lab.traffic import http_requests

pytestmark = pytest.mark.netns


@dataclass
class Cfg:
    session_cache_size: int


class StubAgent:
    """What the collector reads from an L4 agent, for a data plane this test programs."""

    def __init__(self, lb: Balancer, size: int) -> None:
        self.lb = lb
        self.cfg = Cfg(size)
        self.owned_gen = 0  # the agent bumps it when ownership may change; this one never does

    def ownership(self) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        return {name: "lb-1" for name in self.lb.vips()}, {}


@pytest.fixture(scope="module")
def lab() -> Iterator[L4MiniLab]:
    if os.geteuid() != 0:
        pytest.skip("namespaces and XDP need root")
    with L4MiniLab(prefix=f"sx{os.getpid()}") as lab:
        yield lab


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def total(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **kw: str
) -> float:
    want = set(kw.items())
    return sum(v for (n, labels), v in found.items() if n == name and want <= labels)


def test_the_exporter_counts_real_traffic(lab: L4MiniLab) -> None:
    assert lab.lb is not None
    lab.lb.apply(lab.config())
    registry = agent_registry("l4")
    registry.register(L4Collector(StubAgent(lab.lb, lab.session_cache_size), occupancy_every=0))  # type: ignore[arg-type]
    server = MetricsServer("127.0.0.1:0", registry).start()
    url = f"http://127.0.0.1:{server.address[1]}/metrics"
    try:
        before = scrape(url)
        with netns.entered(lab.hosts["client"].ns):
            result = http_requests(VIP4, 40, timeout=2, deadline=60)
        assert result.failed == 0, result.errors
        after = scrape(url)
    finally:
        server.close()
    vip = next(n for n in lab.lb.vips() if VIP4 in n and n.endswith(":80"))

    def delta(name: str, **kw: str) -> float:
        return total(after, name, **kw) - total(before, name, **kw)

    packets = delta("shoal_l4_vip_packets_total", vip=vip, load_balancer_id="lb-1")
    assert packets >= 40 * 3  # at least SYN, request, ACK per connection
    assert delta("shoal_l4_backend_packets_total", vip=vip) == packets
    assert delta("shoal_l4_new_flows_total") >= 40
    assert delta("shoal_l4_session_cache_inserts_total") >= 40
    assert delta("shoal_l4_session_cache_hits_total") >= 40
    assert total(after, "shoal_l4_session_cache_entries") >= 1
    assert total(after, "shoal_l4_flood_mode") == 0
    # Client addresses are counted, never labels.
    assert not any(lab.hosts["client"].ip4 in str(labels) for _, labels in after)
