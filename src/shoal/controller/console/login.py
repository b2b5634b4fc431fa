"""Logging in to the console: with a Shoal API token, or (auth: keystone) with a Keystone
user, password and project, whose token the console then carries."""

from __future__ import annotations

import httpx
from starlette.requests import Request as PlainRequest

from shoal.controller.api.deps import AppState
from shoal.controller.auth import Principal
from shoal.controller.errors import ApiError
from shoal.controller.settings import KeystoneSettings

__all__ = ["LoginError", "keystone_token", "principal_for"]


class LoginError(Exception):
    pass


def principal_for(state: AppState, token: str) -> Principal:
    """Who this token is, as the API's own authenticator sees it."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(b"x-auth-token", token.encode())],
    }
    try:
        with state.db.read() as session:
            return state.authenticator.authenticate(PlainRequest(scope), session)
    except ApiError as exc:
        raise LoginError(exc.message) from None


def keystone_token(
    settings: KeystoneSettings, user: str, password: str, project: str, domain: str
) -> str:
    """A project-scoped token for this user (POST /v3/auth/tokens, the password method)."""
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "domain": {"name": domain}, "password": password}
                },
            },
            "scope": {"project": {"name": project, "domain": {"name": domain}}},
        }
    }
    verify: str | bool = str(settings.ca_bundle) if settings.ca_bundle else True
    base = settings.auth_url.rstrip("/")
    url = (base if base.endswith("/v3") else f"{base}/v3") + "/auth/tokens"
    try:
        with httpx.Client(verify=verify, timeout=settings.timeout) as client:
            r = client.post(url, json=body)
    except httpx.HTTPError as exc:
        raise LoginError(f"Keystone cannot be reached: {exc.__class__.__name__}") from None
    if r.status_code == 401:
        raise LoginError("Keystone refused this user, password or project")
    if r.status_code >= 300 or not r.headers.get("x-subject-token"):
        raise LoginError(f"Keystone answered HTTP {r.status_code}")
    return r.headers["x-subject-token"]


def is_safe_next(target: str | None) -> bool:
    """Only a console path: never another site (an open redirect)."""
    if not target:
        return False
    return target.startswith("/ui/") and "//" not in target and "\\" not in target
