"""Clusters, events, the audit log and API tokens."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field, StrictInt
from sqlalchemy import select

from shoal.controller.api.deps import CurrentPrincipal, State
from shoal.controller.api.shoal.nodes import node_view
from shoal.controller.auth import new_secret, secret_hash
from shoal.controller.db.models import AuditEntry, Event, Node, Token, utcnow
from shoal.controller.errors import NotFound
from shoal.controller.schemas.common import Name, OctaviaModel
from shoal.controller.views import ts

router = APIRouter(tags=["admin"])


@router.get("/clusters")
def list_clusters(state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    principal.require_admin()
    with state.db.read() as session:
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        now = utcnow()
        for node in session.scalars(select(Node).order_by(Node.name)):
            # Counts only: no digests to read.
            view = node_view(node, state.settings, now, digests={})
            groups[(node.cluster, node.role)].append(view)
    return {
        "clusters": [
            {
                "name": name,
                "role": role,
                "nodes": len(nodes),
                "online": sum(1 for n in nodes if n["operating_status"] == "ONLINE"),
                "capacity": sum(n["capacity"] for n in nodes),
                "members": [n["name"] for n in nodes],
            }
            for (name, role), nodes in sorted(groups.items())
        ]
    }


def _event_view(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": ts(e.at),
        "kind": e.kind,
        "severity": e.severity,
        "message": e.message,
        "load_balancer_id": e.load_balancer_id,
        "node_id": e.node_id,
        "project_id": e.project_id,
        "detail": e.detail,
    }


@router.get("/events")
def list_events(
    state: State,
    principal: CurrentPrincipal,
    load_balancer_id: str | None = None,
    node_id: str | None = None,
    kind: str | None = None,
    since_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Newest first. Node-wide events (no project) are visible to admins only."""
    with state.db.read() as session:
        query = select(Event).where(Event.id > since_id).order_by(Event.id.desc()).limit(limit)
        if not principal.reads_all_projects:
            query = query.where(Event.project_id == principal.project_id)
        if load_balancer_id:
            query = query.where(Event.load_balancer_id == load_balancer_id)
        if node_id:
            query = query.where(Event.node_id == node_id)
        if kind:
            query = query.where(Event.kind == kind)
        return {"events": [_event_view(e) for e in session.scalars(query)]}


@router.get("/audit")
def list_audit(
    state: State,
    principal: CurrentPrincipal,
    load_balancer_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Who did what: every accepted write, newest first."""
    with state.db.read() as session:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if not principal.is_admin:
            query = query.where(AuditEntry.project_id == principal.project_id)
        if load_balancer_id:
            query = query.where(AuditEntry.load_balancer_id == load_balancer_id)
        return {
            "audit": [
                {
                    "id": a.id,
                    "at": ts(a.at),
                    "principal": a.principal,
                    "project_id": a.project_id,
                    "action": a.action,
                    "resource_type": a.resource_type,
                    "resource_id": a.resource_id,
                    "load_balancer_id": a.load_balancer_id,
                    "revision": a.revision,
                    "detail": a.detail,
                }
                for a in session.scalars(query)
            ]
        }


class TokenCreate(OctaviaModel):
    name: Name = Field(min_length=1)
    project_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    role: Literal["admin", "member", "reader"]  # nodes: shoal node enroll
    expires_in_days: StrictInt | None = Field(default=None, ge=1, le=3650)


class TokenCreateBody(OctaviaModel):
    token: TokenCreate


def _token_view(t: Token) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "project_id": t.project_id,
        "role": t.role,
        "created_at": ts(t.created_at),
        "expires_at": ts(t.expires_at),
    }


@router.post("/tokens", status_code=201)
def create_token(
    body: TokenCreateBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    """A new API token; its secret is shown in this response only."""
    principal.require_admin()
    spec = body.token
    secret = new_secret()
    with state.db.write() as session:
        token = Token(
            name=spec.name,
            project_id=spec.project_id,
            role=spec.role,
            secret_hash=secret_hash(secret),
            expires_at=utcnow() + dt.timedelta(days=spec.expires_in_days)
            if spec.expires_in_days
            else None,
        )
        session.add(token)
        session.flush()
        return {"token": {**_token_view(token), "secret": secret}}


@router.get("/tokens")
def list_tokens(state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    principal.require_admin()
    with state.db.read() as session:
        return {
            "tokens": [
                _token_view(t) for t in session.scalars(select(Token).order_by(Token.created_at))
            ]
        }


@router.delete("/tokens/{token_id}", status_code=204)
def delete_token(token_id: str, state: State, principal: CurrentPrincipal) -> Response:
    principal.require_admin()
    with state.db.write() as session:
        token = session.get(Token, token_id)
        if token is None:
            raise NotFound.of("Token", token_id)
        session.delete(token)
    return Response(status_code=204)
