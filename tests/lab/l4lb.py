"""An L4 load balancer of the lab's own for one test module (HTTP on 80 and echo on 7 over
the lab's backends), and the node and member changes the tests make to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shoal.lab.lab import Lab

from .conftest import wait_for


@dataclass
class L4Lb:
    lab: Lab
    id: str
    vip: str
    pools: dict[int, str] = field(default_factory=dict)

    def status(self) -> str:
        lb = self.lab.api("GET", f"/v2/lbaas/loadbalancers/{self.id}")["loadbalancer"]
        return str(lb["provisioning_status"])

    def wait_active(self, timeout: float = 20) -> float:
        return wait_for(lambda: self.status() == "ACTIVE", timeout, "load balancer ACTIVE")

    def set_members(self, members: dict[str, int]) -> None:
        """Both pools hold exactly these backends, with these weights (0: draining)."""
        for port, pool in self.pools.items():
            body = [
                {"address": self.lab.state.hosts[b]["ip"], "protocol_port": port, "weight": w}
                for b, w in members.items()
            ]
            self.lab.api("PUT", f"/v2/lbaas/pools/{pool}/members", {"members": body})
            self.wait_active()

    def delete(self) -> None:
        self.lab.api("DELETE", f"/v2/lbaas/loadbalancers/{self.id}?cascade=true")


def create_l4_lb(lab: Lab, name: str, members: dict[str, int]) -> L4Lb:
    lb = lab.api(
        "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"name": name, "flavor_id": "l4"}}
    )["loadbalancer"]
    made = L4Lb(lab, lb["id"], lb["vip_address"])
    made.wait_active()
    for port in (80, 7):
        listener = lab.api(
            "POST",
            "/v2/lbaas/listeners",
            {"listener": {"loadbalancer_id": made.id, "protocol": "TCP", "protocol_port": port}},
        )["listener"]
        made.wait_active()
        pool: dict[str, Any] = lab.api(
            "POST",
            "/v2/lbaas/pools",
            {
                "pool": {
                    "listener_id": listener["id"],
                    "protocol": "TCP",
                    "lb_algorithm": "SOURCE_IP_PORT",
                }
            },
        )["pool"]
        made.pools[port] = pool["id"]
        made.wait_active()
    made.set_members(members)
    return made


def node_id(lab: Lab, name: str) -> str:
    return str(
        next(n["id"] for n in lab.api("GET", "/v2/shoal/nodes")["nodes"] if n["name"] == name)
    )


def set_node(lab: Lab, name: str, admin_state: str) -> None:
    """ACTIVE or DRAINING (a drained L4 node withdraws its VIPs)."""
    lab.api("PUT", f"/v2/shoal/nodes/{node_id(lab, name)}", {"admin_state": admin_state})


def l4_nodes(lab: Lab) -> list[str]:
    return sorted(n for n, h in lab.state.hosts.items() if h.get("role") == "l4")
