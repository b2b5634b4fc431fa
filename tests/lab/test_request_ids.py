"""One request id from the API call to every node: the id the controller answered a write
with is in each L4 agent's log line for the revision it published."""

from __future__ import annotations

import pytest

from shoal.lab.lab import Lab

from .conftest import wait_for

pytestmark = pytest.mark.netns


def test_a_writes_request_id_reaches_every_l4_agents_log(lab: Lab) -> None:
    with lab.api_client() as c:
        r = c.post(
            "/v2/lbaas/loadbalancers", json={"loadbalancer": {"name": "rid", "flavor_id": "l4"}}
        )
    assert r.status_code == 201, r.text
    rid = r.headers["x-openstack-request-id"]
    lb_id = r.json()["loadbalancer"]["id"]
    assert lab.wait_lb(lb_id) == "ACTIVE"
    nodes = [n for n, h in lab.state.hosts.items() if h.get("role") == "l4"]
    logs = {n: lab.dir / "logs" / f"agent-{n}.log" for n in nodes}

    def logged() -> bool:
        return all(
            f"applied load balancer {lb_id} revision 1 (request {rid})" in p.read_text()
            for p in logs.values()
        )

    wait_for(logged, 30, "the request id in every L4 agent's log", interval=0.2)
    rev = lab.api("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions/1")["revision"]
    assert rev["request_id"] == rid
    lab.api("DELETE", f"/v2/lbaas/loadbalancers/{lb_id}")
