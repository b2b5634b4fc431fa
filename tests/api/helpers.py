"""A small client for the API tests, speaking Octavia's wrapped bodies."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

ADMIN_SECRET = "test-admin-secret"


class ApiFailureError(AssertionError):
    pass


class Api:
    def __init__(self, client: TestClient, secret: str) -> None:
        self.client = client
        self.secret = secret

    def with_token(self, secret: str) -> Api:
        return Api(self.client, secret)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> Response:
        hdrs = {"X-Auth-Token": self.secret, **(headers or {})}
        return self.client.request(method, path, json=body, headers=hdrs, params=params or None)

    def ok(
        self, method: str, path: str, body: Any = None, expect: int | None = None, **kw: Any
    ) -> Any:
        r = self.request(method, path, body, **kw)
        if r.status_code >= 300 or (expect is not None and r.status_code != expect):
            raise ApiFailureError(f"{method} {path} -> {r.status_code}: {r.text}")
        return r.json() if r.content else None

    def token(self, name: str, project: str, role: str) -> str:
        body = {"token": {"name": name, "project_id": project, "role": role}}
        return str(self.ok("POST", "/v2/shoal/tokens", body)["token"]["secret"])

    # Octavia resources
    def lb(self, **fields: Any) -> dict[str, Any]:
        return self.ok("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": fields}, expect=201)[
            "loadbalancer"
        ]

    def listener(
        self, lb_id: str, port: int = 80, protocol: str = "TCP", **fields: Any
    ) -> dict[str, Any]:
        body = {
            "listener": {
                "loadbalancer_id": lb_id,
                "protocol": protocol,
                "protocol_port": port,
                **fields,
            }
        }
        return self.ok("POST", "/v2/lbaas/listeners", body, expect=201)["listener"]

    def pool(
        self,
        listener_id: str,
        protocol: str = "TCP",
        algorithm: str = "SOURCE_IP_PORT",
        **fields: Any,
    ) -> dict[str, Any]:
        body = {
            "pool": {
                "listener_id": listener_id,
                "protocol": protocol,
                "lb_algorithm": algorithm,
                **fields,
            }
        }
        return self.ok("POST", "/v2/lbaas/pools", body, expect=201)["pool"]

    def member(self, pool_id: str, address: str, port: int = 80, **fields: Any) -> dict[str, Any]:
        body = {"member": {"address": address, "protocol_port": port, **fields}}
        return self.ok("POST", f"/v2/lbaas/pools/{pool_id}/members", body, expect=201)["member"]

    def monitor(self, pool_id: str, type_: str = "TCP", **fields: Any) -> dict[str, Any]:
        body = {
            "healthmonitor": {
                "pool_id": pool_id,
                "type": type_,
                "delay": 2,
                "timeout": 1,
                "max_retries": 2,
                **fields,
            }
        }
        return self.ok("POST", "/v2/lbaas/healthmonitors", body, expect=201)["healthmonitor"]

    def l4_stack(self, members: int = 3, **lb_fields: Any) -> dict[str, Any]:
        """An L4 load balancer with one TCP listener, a Maglev pool and members."""
        lb = self.lb(flavor_id="l4", **lb_fields)
        li = self.listener(lb["id"])
        pool = self.pool(li["id"])
        ms = [self.member(pool["id"], f"10.1.0.{i + 1}") for i in range(members)]
        return {"lb": lb, "listener": li, "pool": pool, "members": ms}

    def get_lb(self, lb_id: str) -> dict[str, Any]:
        return self.ok("GET", f"/v2/lbaas/loadbalancers/{lb_id}")["loadbalancer"]
