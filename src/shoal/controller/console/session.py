"""The console's session: the caller's API token sealed (encrypted and authenticated with
the controller's keyring) in an HttpOnly cookie, with a per-session CSRF secret."""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass

from fastapi import Request, Response

from shoal.controller.services.keyring import Keyring

__all__ = ["COOKIE", "ConsoleSession", "clear_cookie", "read_session", "set_cookie"]

COOKIE = "shoal_console"
PURPOSE = "shoal-console-session-v1"  # a sealed value of another kind never opens as a session


@dataclass(frozen=True)
class ConsoleSession:
    token: str  # the API token every console call sends: a Shoal token or Keystone's
    name: str
    project_id: str
    role: str
    csrf: str
    issued: float

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def csrf_ok(self, submitted: str | None) -> bool:
        return bool(submitted) and hmac.compare_digest(self.csrf, submitted or "")


def new_session(token: str, name: str, project_id: str, role: str) -> ConsoleSession:
    return ConsoleSession(token, name, project_id, role, secrets.token_urlsafe(24), time.time())


def seal(keyring: Keyring, session: ConsoleSession) -> str:
    return keyring.encrypt(json.dumps({"purpose": PURPOSE, **asdict(session)}).encode())


def unseal(keyring: Keyring, value: str, max_age: float) -> ConsoleSession | None:
    try:
        data = json.loads(keyring.decrypt(value))
        if data.pop("purpose", None) != PURPOSE:
            return None
        session = ConsoleSession(**data)
    except Exception:  # tampered, foreign, from a retired key: simply not logged in
        return None
    if not 0 <= time.time() - session.issued <= max_age:
        return None
    return session


def read_session(request: Request, keyring: Keyring, max_age: float) -> ConsoleSession | None:
    value = request.cookies.get(COOKIE)
    return unseal(keyring, value, max_age) if value else None


def set_cookie(
    response: Response, keyring: Keyring, session: ConsoleSession, max_age: float
) -> None:
    response.set_cookie(
        COOKIE,
        seal(keyring, session),
        max_age=int(max_age),
        path="/ui",
        httponly=True,  # scripts (an injected one included) never read the token
        secure=True,
        samesite="strict",  # no cross-site request carries it
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/ui", httponly=True, secure=True, samesite="strict")
