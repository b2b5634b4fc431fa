"""Request ids as OpenStack services give them: every response carries
`x-openstack-request-id: req-<uuid>`, and the controller logs one line per request with it,
so a client's "Request-ID: req-..." finds the request in the log.

The id is always the controller's own: a client's id is never echoed, since a caller could
otherwise make its requests carry someone else's id in the log. An incoming
x-openstack-request-id of the exact `req-<uuid>` form is logged beside it as the caller's
(global) id, as oslo.middleware does, to follow one request across services."""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoal.controller.errors import REQUEST_ID_HEADER

__all__ = [
    "REQUEST_ID_HEADER",
    "RequestIdMiddleware",
    "current_request_id",
    "log_context",
    "new_request_id",
]

log = logging.getLogger("shoal.controller.requests")
_ID_FORMAT = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_current: ContextVar[str | None] = ContextVar("shoal_request_id", default=None)


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def current_request_id() -> str | None:
    """The id of the request being served (None outside one)."""
    return _current.get()


def log_context() -> dict[str, Any]:
    """What every log line written while serving a request carries (shoal.logs)."""
    return {"request_id": _current.get()}


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid  # request.state.request_id
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        caller = incoming if _ID_FORMAT.fullmatch(incoming) else None
        status: dict[str, Any] = {"code": 500}
        started = time.monotonic()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
                status["code"] = message["status"]
            await send(message)

        token = _current.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
            client = scope.get("client")
            elapsed = (time.monotonic() - started) * 1000
            log.info(
                "%s %s %s %s %d %.1fms%s",
                rid,
                client[0] if client else "-",
                scope["method"],
                scope["path"],
                status["code"],
                elapsed,
                f" caller {caller}" if caller else "",
                extra={
                    "request_id": rid,
                    "global_request_id": caller,
                    "client": client[0] if client else None,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status["code"],
                    "duration_ms": round(elapsed, 1),
                },
            )
