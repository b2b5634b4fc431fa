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
                "delay": 3,  # Octavia's floor for UDP-CONNECT
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


class Fleet:
    """The agents of several nodes, each with its own enrolled credential, behind one
    object the tests talk to like an Api: POST /v2/shoal/nodes enrols the node as the body
    describes it (the admin's step) and registers it with the new credential; calls under
    /v2/shoal/nodes/{id} go out with that node's credential."""

    def __init__(self, admin: Api) -> None:
        self.admin = admin
        self.by_name: dict[str, Api] = {}
        self.by_id: dict[str, Api] = {}

    def enroll(self, name: str, role: str = "l4", **fields: Any) -> Api:
        if name not in self.by_name:
            if role == "l7":
                fields.setdefault("data_address", f"198.51.100.{len(self.by_name) + 1}")
            body = {"enrollment": {"name": name, "role": role, **fields}}
            cred = self.admin.ok("POST", "/v2/shoal/enrollments", body, expect=201)
            self.by_name[name] = self.admin.with_token(cred["enrollment"]["credential"])
        return self.by_name[name]

    def _for(self, method: str, path: str, body: Any) -> Api:
        if method == "POST" and path == "/v2/shoal/nodes":
            enrolled = {k: body[k] for k in ("cluster", "address", "data_address") if k in body}
            return self.enroll(body["name"], body["role"], **enrolled)
        node_id = path.removeprefix("/v2/shoal/nodes/").split("/")[0]
        return self.by_id[node_id]

    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> Response:
        r = self._for(method, path, body).request(method, path, body, **kw)
        self._remember(method, path, body, r.json() if r.status_code == 201 else None)
        return r

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        out = self._for(method, path, body).ok(method, path, body, **kw)
        self._remember(method, path, body, out)
        return out

    def _remember(self, method: str, path: str, body: Any, out: Any) -> None:
        if method == "POST" and path == "/v2/shoal/nodes" and out:
            self.by_id[out["node"]["id"]] = self.by_name[body["name"]]
