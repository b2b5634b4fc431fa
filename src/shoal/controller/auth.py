"""Who is calling: built-in API tokens bound to a project and a role. Authentication is a
pluggable Authenticator so Keystone can be added without touching the endpoints."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.controller.db.models import Token, utcnow
from shoal.controller.errors import Forbidden, NotFound, Unauthorized

__all__ = ["ROLES", "Authenticator", "Principal", "TokenAuthenticator", "new_secret", "secret_hash"]

ROLES = ("admin", "member", "reader", "agent")


@dataclass(frozen=True)
class Principal:
    name: str
    project_id: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can_read(self, project_id: str) -> bool:
        """Another project's objects are invisible (404), except to admins."""
        return self.is_admin or (
            self.role in ("member", "reader") and project_id == self.project_id
        )

    def require_write(self) -> None:
        if self.role not in ("admin", "member"):
            raise Forbidden(f"role {self.role} may not change resources")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this needs the admin role")

    def require_agent(self) -> None:
        if self.role not in ("agent", "admin"):
            raise Forbidden("this is the agents' API: it needs an agent token")

    def check_visible(self, project_id: str, kind: str, ident: str) -> None:
        if not self.can_read(project_id):
            raise NotFound.of(kind, ident)


class Authenticator(Protocol):
    def authenticate(self, request: Request, session: Session) -> Principal: ...


def new_secret() -> str:
    return "shoal_" + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenAuthenticator:
    """X-Auth-Token (as OpenStack clients send it) or Authorization: Bearer."""

    def authenticate(self, request: Request, session: Session) -> Principal:
        secret = request.headers.get("x-auth-token")
        if not secret:
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                secret = auth[7:].strip()
        if not secret:
            raise Unauthorized("authentication required: send an X-Auth-Token header")
        token = session.scalar(select(Token).where(Token.secret_hash == secret_hash(secret)))
        if token is None:
            raise Unauthorized("the token is not valid")
        if token.expires_at is not None and token.expires_at <= utcnow():
            raise Unauthorized("the token has expired")
        return Principal(token.name, token.project_id, token.role)
