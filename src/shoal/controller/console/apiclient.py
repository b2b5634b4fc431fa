"""The console's calls to the controller's own API, in process (ASGI, no socket), with the
session's token: the same validation, RBAC and error messages as the CLI gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request

__all__ = ["ApiFailureError", "ConsoleApi", "Reply"]


class ApiFailureError(Exception):
    """An API error: its status and its one readable line (Octavia's faultstring)."""

    def __init__(self, status: int, line: str) -> None:
        super().__init__(line)
        self.status = status
        self.line = line


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    revision: int | None  # from the ETag every write answers with


def _line(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for key in ("faultstring", "detail", "message"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return f"HTTP {response.status_code}"


def _revision(response: httpx.Response) -> int | None:
    tag = response.headers.get("etag", "").removeprefix("W/").strip('"')
    return int(tag) if tag.isdigit() else None


class ConsoleApi:
    def __init__(self, request: Request, token: str) -> None:
        self.app = request.app
        self.headers = {"X-Auth-Token": token}
        rid = getattr(request.state, "request_id", None)
        if rid:  # the console call and the API calls it makes share one id in the logs
            self.headers["X-OpenStack-Request-ID"] = str(rid)

    async def call(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Reply:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://console.local") as c:
            r = await c.request(method, path, json=body, params=params, headers=self.headers)
        if r.status_code >= 400:
            raise ApiFailureError(r.status_code, _line(r))
        return Reply(r.status_code, r.json() if r.content else None, _revision(r))

    async def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v not in (None, "")}
        return (await self.call("GET", path, params=clean)).body
