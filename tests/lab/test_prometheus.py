"""A real Prometheus scraping the lab: every node and the controller are up as targets, the
per-VIP request rate shows while traffic flows, and flood mode shows during a SYN flood.
Heavy (the whole lab): `make test-prometheus`, not in `make test`."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from typing import Any

import pytest

from shoal import netns
from shoal.lab.lab import Lab
from shoal.lab.traffic import http_requests

from .conftest import FIGURES, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.prometheus]
VIP: dict[str, Any] = {}


def l4_lb(lab: Lab) -> str:
    """An L4 load balancer of its own (port 80 on b1, b2), ACTIVE; its VIP."""
    if VIP:
        return str(VIP["address"])
    lb = lab.api(
        "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"name": "prom", "flavor_id": "l4"}}
    )["loadbalancer"]
    assert lab.wait_lb(lb["id"]) == "ACTIVE"
    li = lab.api(
        "POST",
        "/v2/lbaas/listeners",
        {"listener": {"loadbalancer_id": lb["id"], "protocol": "TCP", "protocol_port": 80}},
    )["listener"]
    assert lab.wait_lb(lb["id"]) == "ACTIVE"
    pool = lab.api(
        "POST",
        "/v2/lbaas/pools",
        {"pool": {"listener_id": li["id"], "protocol": "TCP", "lb_algorithm": "SOURCE_IP_PORT"}},
    )["pool"]
    assert lab.wait_lb(lb["id"]) == "ACTIVE"
    members = [{"address": lab.state.hosts[b]["ip"], "protocol_port": 80} for b in ("b1", "b2")]
    lab.api("PUT", f"/v2/lbaas/pools/{pool['id']}/members", {"members": members})
    assert lab.wait_lb(lb["id"]) == "ACTIVE"
    VIP.update(address=lb["vip_address"], id=lb["id"])
    return str(lb["vip_address"])


def prometheus_lab(lab: Lab) -> Lab:
    if not lab.running("prometheus"):
        lab.start_prometheus()
    return lab


def value(lab: Lab, promql: str) -> float:
    result = lab.promql(promql)
    return float(result[0]["value"][1]) if result else 0.0


def test_every_node_and_the_controller_are_scraped(lab: Lab) -> None:
    prometheus_lab(lab)
    nodes = [n for n, h in lab.state.hosts.items() if h.get("role") in ("l4", "l7")]
    wait_for(
        lambda: value(lab, 'count(up{job=~"shoal-.*"} == 1)') == len(nodes) + 1,
        60,
        "every target up",
        interval=0.5,
    )
    wait_for(
        lambda: (
            value(lab, "count(max by (node) (shoal_bgp_session_up) == 1)")
            == len([n for n in nodes if lab.state.hosts[n]["role"] == "l4"])
        ),
        30,
        "BGP Established on every L4 node, as BIRD says",
        interval=0.5,
    )


def test_per_vip_request_rate_while_traffic_flows(lab: Lab) -> None:
    prometheus_lab(lab)
    vip = l4_lb(lab)
    name = f"tcp://{vip}:80"
    done = threading.Event()
    results: list[Any] = []

    def traffic() -> None:
        # Bounded: 1,500 requests at most, for at most 40 s, inside the lab's namespaces.
        with netns.entered(lab.state.hosts["client"]["ns"]):
            while not done.is_set() and len(results) < 30:
                results.append(http_requests(vip, 50, timeout=2, deadline=40))

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    query = f'sum(rate(shoal_l4_vip_packets_total{{vip="{name}"}}[5s]))'
    try:
        waited = wait_for(lambda: value(lab, query) > 0, 60, "a per-VIP packet rate", 0.5)
        rate, until = 0.0, time.monotonic() + 6  # the 5 s window fills with traffic
        while time.monotonic() < until and thread.is_alive():
            rate = max(rate, value(lab, query))
            time.sleep(0.5)
    finally:
        done.set()
        thread.join(60)
    assert results and all(r.failed == 0 for r in results)
    # Both nodes agree on the VIP's table: one digest among the nodes that serve it.
    agree = f'count(count by (digest) (shoal_l4_vip_table_info{{vip="{name}"}}))'
    assert value(lab, agree) == 1
    FIGURES["Prometheus: per-VIP packet rate visible after"] = f"{waited:.1f} s ({rate:.0f} pkt/s)"


def syn_flood(lab: Lab, vip: str) -> subprocess.Popen[bytes]:
    """Bounded: 50,000 spoofed SYNs at most, for at most 10 s, inside the lab's namespaces."""
    return subprocess.Popen(
        [
            "ip", "netns", "exec", lab.state.hosts["client"]["ns"],
            "timeout", "10", "hping3", "-q", "-S", "-p", "80", "--rand-source",
            "-i", "u10", "-c", "50000", vip,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_flood_mode_shows_during_a_flood(lab: Lab) -> None:
    prometheus_lab(lab)
    vip = l4_lb(lab)
    entered_before = value(lab, 'sum(shoal_l4_flood_transitions_total{direction="enter"})')
    seen_during = False
    # On a machine shared with other work a burst may fall short of the lab's threshold
    # (3,000 new flows/s per CPU): a second one is allowed, never more.
    for _ in range(2):
        flood = syn_flood(lab, vip)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and flood.poll() is None and not seen_during:
                seen_during = value(lab, "max(shoal_l4_flood_mode)") == 1
                time.sleep(0.2)
        finally:
            flood.wait(20)
        with contextlib.suppress(AssertionError):
            # Hold-down keeps the mode a few seconds after the flood.
            wait_for(
                lambda: value(lab, "max(max_over_time(shoal_l4_flood_mode[1m]))") == 1,
                10,
                "flood mode in Prometheus",
                interval=0.5,
            )
            break
    assert value(lab, "max(max_over_time(shoal_l4_flood_mode[1m]))") == 1, "no flood mode seen"
    wait_for(
        lambda: (
            value(lab, 'sum(shoal_l4_flood_transitions_total{direction="enter"})') > entered_before
        ),
        20,
        "a flood-mode entry counted",
        interval=0.5,
    )
    FIGURES["Prometheus: flood mode seen while hping3 ran"] = seen_during


def test_per_listener_request_rate_of_an_l7_load_balancer(lab: Lab) -> None:
    """HAProxy's own exporter, with Shoal's ids, through the L7 agents' /metrics."""
    prometheus_lab(lab)
    lb = lab.api("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"name": "prom-l7"}})[
        "loadbalancer"
    ]
    assert lab.wait_lb(lb["id"]) == "ACTIVE"
    li = lab.api(
        "POST",
        "/v2/lbaas/listeners",
        {"listener": {"loadbalancer_id": lb["id"], "protocol": "HTTP", "protocol_port": 80}},
    )["listener"]
    assert lab.wait_lb(lb["id"]) == "ACTIVE"
    pool = lab.api(
        "POST",
        "/v2/lbaas/pools",
        {"pool": {"listener_id": li["id"], "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}},
    )["pool"]
    assert lab.wait_lb(lb["id"]) == "ACTIVE"
    members = [{"address": lab.state.hosts[b]["ip"], "protocol_port": 80} for b in ("b1", "b2")]
    lab.api("PUT", f"/v2/lbaas/pools/{pool['id']}/members", {"members": members})
    assert lab.wait_lb(lb["id"]) == "ACTIVE"
    done = threading.Event()
    results: list[Any] = []

    def traffic() -> None:
        # Bounded: 1,500 requests at most, for at most 40 s, inside the lab's namespaces.
        with netns.entered(lab.state.hosts["client"]["ns"]):
            while not done.is_set() and len(results) < 30:
                results.append(http_requests(lb["vip_address"], 50, timeout=2, deadline=40))

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    query = (
        "sum by (load_balancer_id) (rate(haproxy_frontend_http_requests_total"
        f'{{listener_id="{li["id"]}"}}[5s]))'
    )
    try:
        waited = wait_for(lambda: bool(lab.promql(query)) and value(lab, query) > 0, 60,
                          "a per-listener request rate", 0.5)  # fmt: skip
        (row,) = lab.promql(query)
    finally:
        done.set()
        thread.join(60)
    assert row["metric"]["load_balancer_id"] == lb["id"]
    assert results and all(r.failed == 0 for r in results)
    FIGURES["Prometheus: L7 listener request rate visible after"] = f"{waited:.1f} s"
