"""API errors in Octavia's body format ({"faultcode", "faultstring", "debuginfo"}), and the
handlers that make every failure a 4xx with a readable message, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "QuotaExceeded",
    "ServiceUnavailable",
    "Unauthorized",
    "fault",
    "install_handlers",
]

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = "x-openstack-request-id"


class ApiError(Exception):
    status = 400

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers  # e.g. a 401's WWW-Authenticate


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class QuotaExceeded(Forbidden):
    pass


class NotFound(ApiError):
    status = 404

    @classmethod
    def of(cls, kind: str, ident: str) -> NotFound:
        return cls(f"{kind} {ident} could not be found.")


class Conflict(ApiError):
    status = 409


class ServiceUnavailable(ApiError):
    status = 503  # a service the controller depends on (Keystone) did not answer


def fault(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {
        "faultcode": "Client" if status < 500 else "Server",
        "faultstring": message,
        "debuginfo": None,
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    # Drop the resource wrapper ({"member": {...}}) and pydantic's union-branch labels.
    if len(parts) > 1 and parts[0] in WRAPPERS:
        parts = parts[1:]
    return ".".join(p for p in parts if not p.startswith(("function-", "lax-", "json-")))


WRAPPERS = {
    "loadbalancer",
    "listener",
    "pool",
    "member",
    "members",
    "healthmonitor",
    "l7policy",
    "rule",
    "quota",
    "vip_pool",
}


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    err = exc.errors()[0]
    where = _loc(tuple(err.get("loc", ())))
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) or value is None else f" Value: {value!r}."
    return fault(400, f"Invalid input for field/attribute {where}.{shown} {msg}")


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return fault(exc.status, exc.message, exc.headers)

    app.add_exception_handler(RequestValidationError, _validation)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"The resource {request.url.path} could not be found."
        return fault(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Server errors skip the request-id middleware's reply path: name the id here.
        rid = getattr(request.state, "request_id", None)
        log.exception("%s unexpected error on %s %s", rid, request.method, request.url.path)
        headers = {REQUEST_ID_HEADER: rid} if rid else None
        return fault(
            500, "Internal error; the request was not applied. See the controller log.", headers
        )
