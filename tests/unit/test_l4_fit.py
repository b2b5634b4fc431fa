"""An L4 node places load balancers within its ACL tries: one whose allowed_cidrs would not fit
is reported "data plane full" and the others go ahead (a tenant's long list cannot stop every
other tenant's apply)."""

from __future__ import annotations

from typing import cast

from shoal.agents.api import AgentApi
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.agents.l4.translate import translate
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.config import Settings


def _lb(lb_id: str, address: str, cidrs: list[str]) -> dict:
    listener = {
        "id": f"li-{lb_id}",
        "protocol": "TCP",
        "protocol_port": 80,
        "admin_state_up": True,
        "default_pool_id": None,
        "allowed_cidrs": cidrs,
    }
    config = {"kind": "l4", "vip_address": address, "pools": [], "listeners": [listener]}
    return {"id": lb_id, "revision": 1, "config": config}


def test_a_list_that_does_not_fit_is_reported_and_the_rest_applied() -> None:
    balancer = Balancer.fake()  # ACL tries of 256 prefixes per family: 128 placeable
    cfg = L4AgentConfig(controller="", token="", name="fit", interface="lo")
    agent = L4Agent(cfg, cast(AgentApi, None))
    agent.lb = balancer
    many = [f"10.{i >> 8}.{i & 255}.0/24" for i in range(100)]
    desired = {
        "load_balancers": [
            _lb("a", "192.0.2.1", many),
            _lb("b", "192.0.2.2", many),
            _lb("c", "192.0.2.3", ["198.51.100.0/24"]),
        ]
    }
    tr = translate(desired)
    chosen = agent._fit(tr)
    assert chosen == {"a", "c"}
    assert "allowed_cidrs" in tr.errors["b"]
    balancer.apply(tr.config(Settings(), chosen))  # and what was chosen fits the tries
    assert sorted(len(s.allowed_cidrs or []) for s in balancer.current_vips()) == [1, 100]
