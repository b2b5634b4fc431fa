"""Two controllers on one PostgreSQL in the lab (`shoal lab up --controllers 2`): the L4
agents are given both URLs. The controller they follow is killed mid-run, under traffic: a
change made through the other is applied by every node, no connection breaks, and nothing
acknowledged before the kill is lost."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shoal import netns
from shoal.lab.lab import Lab, LabSpec
from shoal.lab.traffic import EchoSessions, http_requests

from .conftest import FIGURES, wait_for
from .l4lb import l4_nodes

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def lab2() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    lab = Lab(LabSpec(prefix=f"sc{os.getpid() % 100000}", controllers=2, l7_clusters=0))
    lab.up()
    try:
        yield lab
    finally:
        lab.down(quiet=True)


def status(lab: Lab, lb_id: str, controller: str) -> str:
    lb = lab.api("GET", f"/v2/lbaas/loadbalancers/{lb_id}", controller=controller)
    return str(lb["loadbalancer"]["provisioning_status"])


def active(lab: Lab, lb_id: str, controller: str = "controller", timeout: float = 30) -> float:
    return wait_for(lambda: status(lab, lb_id, controller) == "ACTIVE", timeout, "ACTIVE")


def members(lab: Lab, port: int, weights: dict[str, int]) -> dict[str, Any]:
    return {
        "members": [
            {"address": lab.state.hosts[b]["ip"], "protocol_port": port, "weight": w}
            for b, w in weights.items()
        ]
    }


def test_killing_the_controller_the_agents_follow_loses_nothing(lab2: Lab) -> None:
    lab = lab2
    lb = lab.api("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"flavor_id": "l4"}})
    lb_id, vip = lb["loadbalancer"]["id"], lb["loadbalancer"]["vip_address"]
    active(lab, lb_id)
    pools = {}
    for port in (80, 7):
        li = lab.api(
            "POST",
            "/v2/lbaas/listeners",
            {"listener": {"loadbalancer_id": lb_id, "protocol": "TCP", "protocol_port": port}},
        )["listener"]
        active(lab, lb_id)
        body = {
            "pool": {"listener_id": li["id"], "protocol": "TCP", "lb_algorithm": "SOURCE_IP_PORT"}
        }
        pools[port] = lab.api("POST", "/v2/lbaas/pools", body)["pool"]["id"]
        active(lab, lb_id)
        lab.api("PUT", f"/v2/lbaas/pools/{pools[port]}/members", members(lab, port, {"b1": 1}))
        active(lab, lb_id)
    client = str(lab.state.hosts["client"]["ns"])
    # ACTIVE means applied on the nodes; the router learns the VIP over BGP a moment later (a
    # connection before that gets the router's "network unreachable").
    lab.wait_stable(vip, l4_nodes(lab), timeout=60)
    with EchoSessions(client, vip, 20, interval=0.1) as echo:
        # Acknowledged by the first controller, then it dies at once.
        lab.api("PUT", f"/v2/lbaas/pools/{pools[80]}/members", members(lab, 80, {"b1": 1, "b2": 1}))
        lab.stop("controller", signal.SIGKILL)
        killed = time.monotonic()
        assert not lab.running("controller")
        active(lab, lb_id, "controller2")
        # A change made through the survivor reaches every node.
        lab.api(
            "PUT",
            f"/v2/lbaas/pools/{pools[80]}/members",
            members(lab, 80, {"b1": 1, "b2": 1, "b3": 1}),
            controller="controller2",
        )
        active(lab, lb_id, "controller2")
        FIGURES["controller killed -> a change through the other applied on every node"] = (
            f"{time.monotonic() - killed:.1f} s"
        )
        where = lab.api("GET", f"/v2/shoal/loadbalancers/{lb_id}/nodes", controller="controller2")
        assert len(where["nodes"]) == lab.spec.l4_nodes
        assert all(n["applied"] for n in where["nodes"]) and where["tables_agree"]
        with netns.entered(client):
            result = http_requests(vip, 60, timeout=2, deadline=30)
        assert result.failed == 0 and set(result.by_backend) == {"b1", "b2", "b3"}
    assert echo.broken == {}
    nodes = lab.api("GET", "/v2/shoal/nodes", controller="controller2")["nodes"]
    assert all(n["operating_status"] == "ONLINE" for n in nodes)
    # Back again, it serves the same state.
    lab.start_controller("controller")
    revs = lab.api("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions")["revisions"]
    assert revs[0]["number"] == len(revs) and len(revs) >= 9
