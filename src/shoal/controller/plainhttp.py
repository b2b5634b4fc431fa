"""Plain HTTP is answered only on loopback (a local client, or a TLS-terminating proxy on
the same host) unless the operator set insecure_http: a request that reached the
controller in the clear from elsewhere is refused before any handler reads its token."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from shoal.transport import is_loopback_host

__all__ = ["PlainHttpGuard"]

_BODY = json.dumps(
    {
        "faultcode": "Client",
        "faultstring": "plain HTTP is refused off loopback: use https:// (the controller "
        "needs tls_cert and tls_key), or set insecure_http on a trusted network",
        "debuginfo": None,
    }
).encode()


class PlainHttpGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if (
            scope["type"] == "http"
            and scope.get("scheme") == "http"
            and not (client and is_loopback_host(str(client[0])))
        ):
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_BODY)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _BODY})
            return
        await self.app(scope, receive, send)
