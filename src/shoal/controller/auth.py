"""Who is calling: built-in API tokens bound to a project and a role, and node credentials
bound to one enrolled node (its agent's). Authentication is a pluggable Authenticator:
Shoal's own tokens (here), Keystone's next to them (keystone.py), or none (noauth, for
development on loopback)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.controller.db.models import NodeCredential, Token, utcnow
from shoal.controller.errors import BadRequest, Forbidden, NotFound, Unauthorized
from shoal.controller.rbac import NO_ROLE_MESSAGE, grant_for
from shoal.controller.settings import ControllerSettings

__all__ = [
    "ROLES",
    "Authenticator",
    "NoAuthAuthenticator",
    "NodeGrant",
    "Principal",
    "TokenAuthenticator",
    "make_authenticator",
    "new_secret",
    "request_token",
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
    global_read: bool = False  # Octavia's load-balancer_global_observer: reads every project
    project_name: str | None = None  # the Keystone token's, when it names one

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def reads_all_projects(self) -> bool:
        return self.is_admin or self.global_read

    def can_read(self, project_id: str) -> bool:
        """Another project's objects are invisible (404), except to admins and global
        observers."""
        return self.reads_all_projects or (
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
    # The WWW-Authenticate value of this authenticator's 401s.
    challenge: str

    def authenticate(self, request: Request, session: Session) -> Principal: ...


# A node credential's secret starts with this (services/enrollment.py issues them), an API
# token's with new_secret()'s default: lookup() asks the table the prefix names first.
NODE_SECRET_PREFIX = "shoalnode_"


def new_secret(prefix: str = "shoal_") -> str:
    return prefix + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def request_token(request: Request) -> str | None:
    """X-Auth-Token (as OpenStack clients send it) or Authorization: Bearer."""
    secret = request.headers.get("x-auth-token")
    if not secret:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            secret = auth[7:].strip()
    return secret or None


class TokenAuthenticator:
    """Shoal's own API tokens and node credentials, looked up by their hash."""

    challenge = 'Bearer realm="shoal"'

    def authenticate(self, request: Request, session: Session) -> Principal:
        secret = request_token(request)
        if not secret:
            raise Unauthorized("authentication required: send an X-Auth-Token header")
        principal = self.lookup(session, secret)
        if principal is None:
            raise Unauthorized("the token is not valid")
        return principal

    def lookup(self, session: Session, secret: str) -> Principal | None:
        """The principal of a Shoal secret; None when Shoal never issued it. Expired and
        revoked ones are refused here, not passed on to another authenticator."""
        digest = secret_hash(secret)
        node_first = secret.startswith(NODE_SECRET_PREFIX)  # an agent's: one statement
        if node_first and (node := _node_principal(session, digest)) is not None:
            return node
        token = session.scalar(select(Token).where(Token.secret_hash == digest))
        if token is None:
            return None if node_first else _node_principal(session, digest)
        if token.expires_at is not None and token.expires_at <= utcnow():
            raise Unauthorized("the token has expired")
        if token.role not in ROLES:
            # The shared agent token of older releases: one secret for every node.
            raise Unauthorized(
                f"{token.role} tokens are no longer accepted: enrol each node "
                "(shoal node enroll) and give its agent its own credential"
            )
        return Principal(token.name, token.project_id, token.role)


class NoAuthAuthenticator:
    """Development without Keystone (auth: noauth, loopback only), like Octavia's noauth:
    no token is needed, the project is X-Project-Id's (else "admin"), the roles X-Roles'
    (comma-separated, mapped as Keystone's; without the header: admin). A Shoal secret,
    when sent, still counts, so agents act as their nodes."""

    challenge = 'Bearer realm="shoal"'

    def __init__(self, shoal: TokenAuthenticator | None = None) -> None:
        self.shoal = shoal or TokenAuthenticator()

    def authenticate(self, request: Request, session: Session) -> Principal:
        secret = request_token(request)
        if secret:
            principal = self.shoal.lookup(session, secret)
            if principal is not None:
                return principal
        project = request.headers.get("x-project-id", "admin").strip()
        if not project or len(project) > 255 or not project.isprintable():
            raise BadRequest("X-Project-Id must be a project id of 1 to 255 printable characters")
        roles = request.headers.get("x-roles")
        if roles is None:
            return Principal("noauth", project, "admin")
        grant = grant_for(r.strip() for r in roles.split(","))
        if not grant.allows_anything:
            raise Forbidden(NO_ROLE_MESSAGE)
        return Principal("noauth", project, grant.role or "reader", global_read=grant.global_read)


def make_authenticator(settings: ControllerSettings) -> Authenticator:
    """The authenticator settings.auth names."""
    if settings.auth == "noauth":
        settings.check_noauth()
        return NoAuthAuthenticator()
    if settings.auth == "keystone":
        from shoal.controller.keystone import KeystoneAuthenticator, KeystoneClient

        assert settings.keystone is not None  # the settings' validator requires it
        return KeystoneAuthenticator(KeystoneClient(settings.keystone))
    return TokenAuthenticator()


def _node_principal(session: Session, digest: str) -> Principal | None:
    cred = session.scalar(select(NodeCredential).where(NodeCredential.secret_hash == digest))
    if cred is None:
        cred = session.scalar(select(NodeCredential).where(NodeCredential.previous_hash == digest))
        if cred is None or cred.previous_until is None or cred.previous_until <= utcnow():
            return None
    if cred.revoked_at is not None:
        raise Unauthorized(f"the credential of node {cred.name} was revoked")
    grant = NodeGrant(cred.name, cred.role, cred.cluster, cred.address, cred.data_address)
    return Principal(f"node:{cred.name}", "", NODE_ROLE, grant)
