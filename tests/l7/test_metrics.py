"""The L7 agent's /metrics: HAProxy's own exporter, read over its root-only socket, with
Shoal's load balancer, listener, pool and member ids added; then against a real HAProxy."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from shoal.agents.l7.metrics import SOCKET, HAProxyExporter, relabel
from shoal.agents.l7.stats import Ownership

from .test_agent import Node, node, simple_lb, spread

__all__ = ["node"]  # the fixture, shared with test_agent

SAMPLE = """# HELP haproxy_frontend_http_requests_total Total number of HTTP requests received.
# TYPE haproxy_frontend_http_requests_total counter
haproxy_frontend_http_requests_total{proxy="l_li1"} 12
haproxy_frontend_http_requests_total{proxy="shoal_monitor"} 3
# HELP haproxy_server_status Current status of the server.
# TYPE haproxy_server_status gauge
haproxy_server_status{proxy="p_pool1",server="m_mem1",state="UP"} 1
haproxy_server_status{proxy="p_unknown",server="m_x",state="UP"} 1
"""


def samples(text: str) -> list:
    return [s for f in text_string_to_metric_families(text) for s in f.samples]


def test_shoal_ids_are_added_to_haproxy_proxies_and_servers() -> None:
    owner = Ownership(listeners={"li1": "lb1"}, pools={"pool1": "lb1"})
    out = [s for m in relabel(SAMPLE, owner) for s in m.samples]
    by = {(s.name, s.labels["proxy"]): s.labels for s in out}
    assert by[("haproxy_frontend_http_requests_total", "l_li1")] == {
        "proxy": "l_li1",
        "listener_id": "li1",
        "load_balancer_id": "lb1",
    }
    assert by[("haproxy_server_status", "p_pool1")]["member_id"] == "mem1"
    assert by[("haproxy_server_status", "p_pool1")]["pool_id"] == "pool1"
    # Not this node's (or not a load balancer's): passed through unchanged.
    assert by[("haproxy_frontend_http_requests_total", "shoal_monitor")] == {
        "proxy": "shoal_monitor"
    }
    assert "load_balancer_id" not in by[("haproxy_server_status", "p_unknown")]


def test_a_real_haproxy_exports_per_listener_requests(node: Node) -> None:
    lb = simple_lb()
    node.apply(lb)
    assert (node.agent.home / SOCKET).stat().st_mode & 0o077 == 0  # root only
    spread(node.ns, 30)
    exporter = HAProxyExporter(node.agent)
    found = samples(exporter.scrape().decode())
    up = [s for s in found if s.name == "shoal_l7_haproxy_exporter_up"]
    assert up[0].value == 1
    requests = [
        s
        for s in found
        if s.name == "haproxy_frontend_http_requests_total"
        and s.labels.get("listener_id") == "li-http"
    ]
    assert requests and requests[0].labels["load_balancer_id"] == lb["id"]
    assert requests[0].value >= 30
    members = {
        s.labels.get("member_id")
        for s in found
        if s.name.startswith("haproxy_server_") and s.labels.get("load_balancer_id") == lb["id"]
    }
    assert members == {"m-s1", "m-s2", "m-s3"}


def test_haproxy_not_answering_is_a_metric(node: Node, tmp_path) -> None:
    exporter = HAProxyExporter(node.agent)
    node.agent.home = tmp_path  # no socket there
    found = samples(exporter.scrape().decode())
    assert [s.value for s in found if s.name == "shoal_l7_haproxy_exporter_up"] == [0]
