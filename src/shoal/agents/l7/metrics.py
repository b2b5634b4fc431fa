"""The L7 node's metrics: HAProxy 2.6's own Prometheus exporter (`http-request use-service
prometheus-exporter` on a root-only unix socket, see templates/haproxy.cfg.j2), passed
through with Shoal's ids added to HAProxy's frontends, backends and servers:

    proxy="l_<listener>"        -> listener_id, load_balancer_id
    proxy="p_<pool>"            -> pool_id, load_balancer_id
    server="m_<member>"         -> member_id

and the agent's own counters (reloads, runtime changes). HAProxy's metric names stay its
own (haproxy_*), so its documentation and dashboards apply."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from shoal.agents.l7.stats import Ownership

if TYPE_CHECKING:
    from shoal.agents.l7.agent import L7Agent

__all__ = ["HAProxyExporter", "L7Collector", "relabel", "scrape_haproxy"]

log = logging.getLogger("shoal.agent.l7.metrics")
SOCKET = "prometheus.sock"  # in HAProxy's run directory


def scrape_haproxy(socket: Path, timeout: float = 5.0) -> str:
    """HAProxy's exporter output, read over its unix socket."""
    transport = httpx.HTTPTransport(uds=str(socket))
    with httpx.Client(transport=transport, timeout=timeout) as client:
        r = client.get("http://haproxy/metrics")
        r.raise_for_status()
        return r.text


def _shoal_labels(labels: dict[str, str], owner: Ownership) -> dict[str, str]:
    extra: dict[str, str] = {}
    proxy = labels.get("proxy", "")
    if proxy.startswith("l_") and proxy[2:] in owner.listeners:
        extra = {"listener_id": proxy[2:], "load_balancer_id": owner.listeners[proxy[2:]]}
    elif proxy.startswith("p_") and proxy[2:] in owner.pools:
        extra = {"pool_id": proxy[2:], "load_balancer_id": owner.pools[proxy[2:]]}
        server = labels.get("server", "")
        if server.startswith("m_"):
            extra["member_id"] = server[2:]
    return extra


def relabel(text: str, owner: Ownership) -> list[Metric]:
    """HAProxy's families with Shoal's ids added to each sample that belongs to a load
    balancer of this node."""
    out = []
    for family in text_string_to_metric_families(text):
        metric = Metric(family.name, family.documentation, family.type, family.unit)
        for s in family.samples:
            labels = {**s.labels, **_shoal_labels(s.labels, owner)}
            metric.add_sample(s.name, labels, s.value, s.timestamp, s.exemplar)
        out.append(metric)
    return out


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class L7Collector(Collector):
    def __init__(self, agent: L7Agent) -> None:
        self.agent = agent

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        reloads = CounterMetricFamily("shoal_l7_reloads", "Hitless HAProxy reloads by the agent.")
        reloads.add_metric([], self.agent.reloads)
        yield reloads
        runtime = CounterMetricFamily(
            "shoal_l7_runtime_changes",
            "Changes applied through HAProxy's runtime API (no reload).",
        )
        runtime.add_metric([], self.agent.runtime_changes)
        yield runtime
        pending = GaugeMetricFamily(
            "shoal_l7_pending_server_deletions",
            "Removed members kept in maintenance until their last connection ends.",
        )
        pending.add_metric([], len(self.agent.pending_deletions))
        yield pending


class HAProxyExporter:
    """What the agent's /metrics appends after its own registry."""

    def __init__(self, agent: L7Agent) -> None:
        self.agent = agent
        agent.registry.register(L7Collector(agent))

    def scrape(self) -> bytes:
        up = GaugeMetricFamily(
            "shoal_l7_haproxy_exporter_up", "1 when HAProxy's own exporter answered."
        )
        try:
            text = scrape_haproxy(self.agent.home / SOCKET)
        except (httpx.HTTPError, OSError) as exc:
            log.debug("HAProxy's exporter did not answer: %s", exc)
            up.add_metric([], 0)
            return bytes(generate_latest(_Families([up])))
        up.add_metric([], 1)
        families = [up, *relabel(text, self.agent.ownership())]
        return bytes(generate_latest(_Families(families)))
