"""Keystone tokens, next to Shoal's own (auth: keystone).

A token Shoal did not issue is validated with Keystone's `GET /v3/auth/tokens` (X-Subject-Token),
called with the controller's own service token, and the answer is cached for cache_ttl (never
past the token's expiry), so a busy client costs one Keystone round trip per cache_ttl, not
one per request. Keystone's "not valid" answers are cached too, apart, so a flood of made-up
tokens neither reaches Keystone twice nor evicts the valid ones. Secrets that look like
Shoal's (prefix shoal_) are never sent to Keystone.

This is an own validator rather than keystonemiddleware's auth_token: that one is WSGI
middleware configured through oslo.config, and the controller is an ASGI app with its own
settings; the one call it needs is Keystone's documented token validation."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request
from sqlalchemy.orm import Session

from shoal.controller.auth import Principal, TokenAuthenticator, request_token
from shoal.controller.errors import Forbidden, ServiceUnavailable, Unauthorized
from shoal.controller.rbac import NO_ROLE_MESSAGE, grant_for
from shoal.controller.services.enrollment import SECRET_PREFIX as NODE_SECRET_PREFIX
from shoal.controller.settings import KeystoneSettings

__all__ = ["Identity", "KeystoneAuthenticator", "KeystoneClient", "TokenCache"]

MAX_TOKEN_LENGTH = 8192  # Fernet tokens are ~200 characters, JWS ones ~800
SHOAL_PREFIX = "shoal_"  # new_secret()'s
LOCAL_PREFIXES = (SHOAL_PREFIX, NODE_SECRET_PREFIX)
SERVICE_TOKEN_MARGIN = 60.0  # renew the service token this long before it expires


@dataclass(frozen=True)
class Identity:
    """What Keystone says a token is."""

    user_id: str
    user_name: str
    project_id: str | None
    roles: frozenset[str]
    system_scope: bool
    expires_at: float  # epoch seconds
    project_name: str | None = None


def _expiry(raw: Any) -> float:
    try:
        return dt.datetime.fromisoformat(str(raw)).timestamp()
    except ValueError:
        return 0.0  # unreadable: treated as expired


def _identity(body: Any) -> Identity:
    token = body["token"]
    project = token.get("project") or {}
    return Identity(
        user_id=str(token["user"]["id"]),
        user_name=str(token["user"].get("name") or token["user"]["id"]),
        project_id=str(project["id"]) if project.get("id") else None,
        roles=frozenset(str(r["name"]) for r in token.get("roles") or ()),
        system_scope=bool((token.get("system") or {}).get("all")),
        expires_at=_expiry(token.get("expires_at")),
        project_name=str(project["name"]) if project.get("name") else None,
    )


class TokenCache:
    """A bounded LRU of token digests (never the tokens) to a value and a deadline."""

    def __init__(self, size: int, clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.clock = clock
        self._rows: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                return None
            if row[1] <= self.clock():
                del self._rows[key]
                return None
            self._rows.move_to_end(key)
            return row[0]

    def put(self, key: str, value: Any, until: float) -> None:
        with self._lock:
            self._rows[key] = (value, until)
            self._rows.move_to_end(key)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)

    def __len__(self) -> int:
        return len(self._rows)


class KeystoneClient:
    """Validates tokens against Keystone with the service user's own token."""

    def __init__(
        self,
        settings: KeystoneSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        base = settings.auth_url.rstrip("/")
        self.base = base if base.endswith("/v3") else f"{base}/v3"
        self._http = httpx.Client(
            timeout=settings.timeout,
            verify=str(settings.ca_bundle) if settings.ca_bundle else True,
            transport=transport,
        )
        self._service: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self.validations = 0  # Keystone round trips for user tokens (for tests and metrics)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, f"{self.base}{path}", **kwargs)
        except httpx.HTTPError as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ServiceUnavailable(f"Keystone at {self.base} did not answer: {reason}") from None

    def _service_token(self, renew: bool = False) -> str:
        with self._lock:
            if not renew and self._service and self._service[1] > self.clock():
                return self._service[0]
            s = self.settings
            body = {
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "name": s.username,
                                "domain": {"name": s.user_domain_name},
                                "password": s.resolve_password(),
                            }
                        },
                    },
                    "scope": {
                        "project": {
                            "name": s.project_name,
                            "domain": {"name": s.project_domain_name},
                        }
                    },
                }
            }
            r = self._call("POST", "/auth/tokens", json=body, params={"nocatalog": "1"})
            if r.status_code != 201 or not r.headers.get("x-subject-token"):
                raise ServiceUnavailable(
                    f"Keystone refused the controller's service user {s.username!r} "
                    f"(HTTP {r.status_code}): check keystone.username and its password"
                )
            expires = _expiry(r.json().get("token", {}).get("expires_at"))
            self._service = (r.headers["x-subject-token"], expires - SERVICE_TOKEN_MARGIN)
            return self._service[0]

    def validate(self, token: str) -> Identity | None:
        """The token's identity, or None when Keystone says it is not valid."""
        self.validations += 1
        for renew in (False, True):
            r = self._call(
                "GET",
                "/auth/tokens",
                params={"nocatalog": "1"},
                headers={
                    "X-Auth-Token": self._service_token(renew),
                    "X-Subject-Token": token,
                },
            )
            if r.status_code == 401 and not renew:
                continue  # our own token expired or was revoked: renew it once
            if r.status_code == 200:
                try:
                    return _identity(r.json())
                except (KeyError, TypeError, ValueError):
                    raise ServiceUnavailable("Keystone answered with a malformed token") from None
            if r.status_code in (401, 404):
                return None
            if r.status_code == 403:
                raise ServiceUnavailable(
                    "Keystone does not let the controller's service user validate tokens: "
                    "give it the service (or admin) role"
                )
            raise ServiceUnavailable(f"Keystone answered token validation with {r.status_code}")
        return None

    def close(self) -> None:
        self._http.close()


class KeystoneAuthenticator:
    """Shoal's tokens and node credentials first (a local lookup), then Keystone's."""

    def __init__(
        self,
        client: KeystoneClient,
        shoal: TokenAuthenticator | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.shoal = shoal or TokenAuthenticator()
        self.clock = clock
        settings = client.settings
        self.ttl = settings.cache_ttl
        self.valid = TokenCache(settings.cache_size, clock)
        self.invalid = TokenCache(max(1, settings.cache_size // 4), clock)
        uri = settings.www_authenticate_uri or settings.auth_url
        self.challenge = f'Keystone uri="{uri}"'

    def close(self) -> None:
        self.client.close()

    def authenticate(self, request: Request, session: Session) -> Principal:
        secret = request_token(request)
        if not secret:
            raise Unauthorized("authentication required: send an X-Auth-Token header")
        principal = self.shoal.lookup(session, secret)
        if principal is not None:
            return principal
        # Shoal's own secrets (API tokens, node credentials) that Shoal did not accept are
        # refused here: never handed to Keystone, where an old credential would be disclosed.
        if secret.startswith(LOCAL_PREFIXES) or len(secret) > MAX_TOKEN_LENGTH:
            raise Unauthorized("the token is not valid")
        return self._principal(self._identity(secret))

    def _identity(self, secret: str) -> Identity:
        key = hashlib.sha256(secret.encode()).hexdigest()
        identity: Identity | None = self.valid.get(key)
        if identity is None:
            if self.invalid.get(key) is not None:
                raise Unauthorized("the token is not valid")
            identity = self.client.validate(secret)
            now = self.clock()
            if identity is None or identity.expires_at <= now:
                self.invalid.put(key, True, now + max(self.ttl, 1.0))
                raise Unauthorized("the token is not valid")
            self.valid.put(key, identity, min(now + self.ttl, identity.expires_at))
        elif identity.expires_at <= self.clock():
            raise Unauthorized("the token has expired")
        return identity

    @staticmethod
    def _principal(identity: Identity) -> Principal:
        grant = grant_for(identity.roles, system_scope=identity.system_scope)
        if not grant.allows_anything:
            raise Forbidden(NO_ROLE_MESSAGE)
        if identity.project_id is None and grant.role not in (None, "admin"):
            grant = type(grant)(None, grant.global_read)  # no project to be a member of
        if grant.role is None and not grant.global_read:
            raise Forbidden(NO_ROLE_MESSAGE)
        return Principal(
            identity.user_name,
            identity.project_id or "",
            grant.role or "reader",
            global_read=grant.global_read,
            project_name=identity.project_name,
        )
