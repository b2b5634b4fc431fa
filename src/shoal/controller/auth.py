"""Who is calling: built-in API tokens bound to a project and a role, and node credentials
bound to one enrolled node (its agent's). Authentication is a pluggable Authenticator so
Keystone can be added without touching the endpoints."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.controller.db.models import NodeCredential, Token, utcnow
from shoal.controller.errors import Forbidden, NotFound, Unauthorized

__all__ = [
    "ROLES",
    "Authenticator",
    "NodeGrant",
    "Principal",
    "TokenAuthenticator",
    "new_secret",
    "secret_hash",
]

ROLES = ("admin", "member", "reader")  # of API tokens; a node authenticates as its own node
NODE_ROLE = "node"


@dataclass(frozen=True)
class NodeGrant:
    """What an admin enrolled a node as: its credential may act for this node only."""

    name: str
    role: str
    cluster: str
    address: str | None
    data_address: str | None


@dataclass(frozen=True)
class Principal:
    name: str
    project_id: str
    role: str
    node: NodeGrant | None = None  # set for a node credential (role "node")

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

    def require_node(self, name: str | None = None) -> NodeGrant:
        """The caller is a node's agent and (given a name) that node itself."""
        if self.node is None:
            raise Forbidden(
                "this is the agents' API: it needs the node's own credential (shoal node enroll)"
            )
        if name is not None and name != self.node.name:
            raise Forbidden(f"the credential of node {self.node.name} cannot act for node {name}")
        return self.node

    def check_visible(self, project_id: str, kind: str, ident: str) -> None:
        if not self.can_read(project_id):
            raise NotFound.of(kind, ident)


class Authenticator(Protocol):
    def authenticate(self, request: Request, session: Session) -> Principal: ...


def new_secret(prefix: str = "shoal_") -> str:
    return prefix + secrets.token_urlsafe(32)


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
        digest = secret_hash(secret)
        token = session.scalar(select(Token).where(Token.secret_hash == digest))
        if token is None:
            return _node_principal(session, digest)
        if token.expires_at is not None and token.expires_at <= utcnow():
            raise Unauthorized("the token has expired")
        if token.role not in ROLES:
            # The shared agent token of older releases: one secret for every node.
            raise Unauthorized(
                f"{token.role} tokens are no longer accepted: enrol each node "
                "(shoal node enroll) and give its agent its own credential"
            )
        return Principal(token.name, token.project_id, token.role)


def _node_principal(session: Session, digest: str) -> Principal:
    cred = session.scalar(select(NodeCredential).where(NodeCredential.secret_hash == digest))
    if cred is None:
        cred = session.scalar(select(NodeCredential).where(NodeCredential.previous_hash == digest))
        if cred is None or cred.previous_until is None or cred.previous_until <= utcnow():
            raise Unauthorized("the token is not valid")
    if cred.revoked_at is not None:
        raise Unauthorized(f"the credential of node {cred.name} was revoked")
    grant = NodeGrant(cred.name, cred.role, cred.cluster, cred.address, cred.data_address)
    return Principal(f"node:{cred.name}", "", NODE_ROLE, grant)
