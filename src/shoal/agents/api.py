"""The agent's side of the controller API, with the error classes the reconcile loop needs:
a controller that cannot be reached is temporary (keep forwarding, retry with backoff); a
refusal is reported and not retried blindly.

An agent may be given several controller URLs (controllers are stateless, one database
behind them): a call that cannot reach one, or gets a 5xx, is tried on the next, and the
one that answered is used from then on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shoal.errors import ShoalError
from shoal.transport import verify_for
from shoal.wire.feed import Feed
from shoal.wire.report import BackendTraffic, RoutingState

__all__ = ["AgentApi", "ControllerRefusedError", "ControllerUnavailableError", "NodeInfo"]


class ControllerUnavailableError(ShoalError):
    """Temporary: no answer, a timeout or a 5xx."""


class ControllerRefusedError(ShoalError):
    """The controller answered with a 4xx."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"controller refused ({status}): {message}")
        self.status = status


@dataclass(frozen=True)
class NodeInfo:
    name: str
    role: str
    cluster: str = "default"
    address: str | None = None
    data_address: str | None = None
    capacity: int = 100
    version: str | None = None


class AgentApi:
    def __init__(
        self,
        url: str | list[str],
        token: str,
        timeout: float = 10.0,
        *,
        ca_bundle: str | Path | None = None,
        insecure_http: bool = False,
    ) -> None:
        """url: one controller, or several (tried in turn when one fails). token: the
        node's own credential (shoal node enroll). An https:// controller is verified against
        ca_bundle; http:// only to loopback unless insecure_http."""
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("at least one controller URL is needed")
        self.urls = [u.rstrip("/") for u in urls]
        self._current = 0
        self._clients = [
            httpx.Client(
                base_url=u,
                headers={"X-Auth-Token": token},
                timeout=timeout,
                verify=verify_for(u, ca_bundle, insecure_http),
            )
            for u in self.urls
        ]

    @property
    def url(self) -> str:
        """The controller in use."""
        return self.urls[self._current]

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def _call(
        self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Tries the controller in use, then each other one once; the last error is raised
        when none answers."""
        error: ControllerUnavailableError | None = None
        for step in range(len(self._clients)):
            index = (self._current + step) % len(self._clients)
            try:
                r = self._once(self._clients[index], method, path, timeout, **kwargs)
            except ControllerUnavailableError as exc:
                error = exc
                continue
            self._current = index
            return r
        assert error is not None
        raise error

    def _once(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        timeout: float | None,
        **kwargs: Any,
    ) -> httpx.Response:
        try:
            r = client.request(
                method,
                path,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise ControllerUnavailableError(
                f"cannot reach the controller at {client.base_url}: {exc.__class__.__name__}: {exc}"
            ) from None
        if r.status_code >= 500:
            raise ControllerUnavailableError(
                f"controller {client.base_url} error {r.status_code}: {r.text[:200]}"
            )
        if r.status_code >= 400:
            try:
                message = r.json().get("faultstring", r.text)
            except (ValueError, AttributeError):
                message = r.text
            raise ControllerRefusedError(r.status_code, str(message)[:500])
        return r

    def register(self, node: NodeInfo) -> str:
        body = {k: v for k, v in node.__dict__.items() if v is not None}
        return str(self._call("POST", "/v2/shoal/nodes", json=body).json()["node"]["id"])

    def desired_state(self, node_id: str, since: int = -1, wait: float = 0) -> dict[str, Any]:
        """The node's complete desired state; with since/wait, a long poll that may answer
        {"seq": since, "changed": false}."""
        params = {"since": since, "timeout": wait} if since >= 0 else {}
        r = self._call(
            "GET", f"/v2/shoal/nodes/{node_id}/desired-state", params=params, timeout=wait + 15
        )
        doc: dict[str, Any] = json.loads(r.content)
        return doc

    def feed(self, node_id: str, position: int, wait: float = 0) -> Feed:
        """The changes since position (0: a snapshot); with wait, a long poll that may
        answer changed=false."""
        r = self._call(
            "GET",
            f"/v2/shoal/nodes/{node_id}/feed",
            params={"position": position, "timeout": wait},
            timeout=wait + 15,
        )
        try:
            return Feed.model_validate_json(r.content)
        except ValueError as exc:
            raise ControllerUnavailableError(f"unreadable feed answer: {exc}") from None

    def report(
        self,
        node_id: str,
        seq: int,
        errors: list[dict[str, Any]],
        digests: dict[str, Any],
        counters: dict[str, Any],
        version: str | None = None,
        *,
        routing: RoutingState | None = None,
        backends: list[BackendTraffic] | None = None,
        numbering: dict[str, Any] | None = None,
    ) -> None:
        """The controller checks the body against shoal.wire.report.NodeReport. numbering:
        report/base/removed of a numbered (delta) report (shoal.agents.report_delta)."""
        body: dict[str, Any] = {
            "seq": seq,
            "errors": errors,
            "digests": digests,
            "counters": counters,
        }
        if version:
            body["version"] = version
        if routing is not None:
            body["routing"] = routing.model_dump(mode="json")
        if backends is not None:
            body["backends"] = [b.model_dump(mode="json") for b in backends]
        if numbering:
            body.update(numbering)
        self._call("POST", f"/v2/shoal/nodes/{node_id}/report", json=body)

    def health(self, node_id: str, results: list[dict[str, Any]]) -> None:
        if results:
            self._call("POST", f"/v2/shoal/nodes/{node_id}/health", json={"results": results})

    def events(self, node_id: str, events: list[dict[str, Any]]) -> None:
        if events:
            self._call("POST", f"/v2/shoal/nodes/{node_id}/events", json={"events": events})
