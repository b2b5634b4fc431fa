"""Lookups the Octavia endpoints share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from fastapi import Request, Response
from sqlalchemy.orm import Session

from shoal.controller.api.common import etag_response
from shoal.controller.auth import Principal
from shoal.controller.errors import Forbidden, NotFound

__all__ = [
    "apply_fields",
    "get_visible",
    "lb_id_for",
    "lb_of",
    "render",
    "renderer",
    "target_project",
]

M = TypeVar("M")

KIND_NAMES = {
    "load_balancers": "Load Balancer",
    "listeners": "Listener",
    "pools": "Pool",
    "members": "Member",
    "health_monitors": "Health Monitor",
    "l7policies": "L7 Policy",
    "l7rules": "L7 Rule",
}


def get_visible(session: Session, model: type[M], ident: str, principal: Principal) -> M:
    """The row, or 404 when it does not exist or belongs to another project."""
    row: Any = session.get(model, ident)
    name = KIND_NAMES[model.__tablename__]  # type: ignore[attr-defined]
    if row is None or not principal.can_read(row.project_id):
        raise NotFound.of(name, ident)
    return row  # type: ignore[no-any-return]


def target_project(principal: Principal, requested: str | None) -> str:
    if requested and requested != principal.project_id:
        if not principal.is_admin:
            raise Forbidden("only admins create resources in another project")
        return requested
    return principal.project_id


# A child resource's way up to the listener or pool that names its load balancer.
_UP = (("pool",), ("listener",), ("policy", "listener"))


def _listener_or_pool(row: Any) -> Any:
    """The listener or pool above row (row itself if it is one)."""
    for path in _UP:
        parent = row
        for attr in path:
            parent = getattr(parent, attr, None)
            if parent is None:
                break
        else:
            return parent
    return row


def lb_of(row: Any) -> Any:
    """The load balancer a child resource belongs to."""
    lb = getattr(_listener_or_pool(row), "load_balancer", None)
    if lb is None:
        raise AssertionError(f"no load balancer for {row!r}")
    return lb


def render(
    state: Any,
    principal: Principal,
    model: type[Any],
    ident: str,
    view: Callable[[Any], dict[str, Any]],
    key: str,
    status_code: int = 200,
    request: Request | None = None,
) -> Response:
    """A child resource's response, with its load balancer's revision as ETag."""
    with state.db.read() as session:
        row = get_visible(session, model, ident, principal)
        return etag_response({key: view(row)}, lb_of(row).revision, status_code, request)


class Renderer(Protocol):
    def __call__(
        self,
        state: Any,
        principal: Principal,
        ident: str,
        code: int = 200,
        request: Request | None = None,
    ) -> Response: ...


def renderer(model: type[Any], view: Callable[[Any], dict[str, Any]], key: str) -> Renderer:
    """render() for one resource (its model, view and response key), as its handlers call it."""

    def bound(
        state: Any,
        principal: Principal,
        ident: str,
        code: int = 200,
        request: Request | None = None,
    ) -> Response:
        return render(state, principal, model, ident, view, key, code, request)

    return bound


def lb_id_for(state: Any, principal: Principal, model: type[Any], ident: str) -> str:
    """The load balancer id of a child resource (404 if invisible), before a write locks it:
    from the foreign keys on the way up, without loading the load balancer's row."""
    with state.db.read() as session:
        row = get_visible(session, model, ident, principal)
        return str(_listener_or_pool(row).load_balancer_id)


def apply_fields(row: Any, changes: dict[str, Any], nullable: frozenset[str] = frozenset()) -> None:
    """Sets the given fields; None means "unchanged" except for fields that may be cleared."""
    for key, value in changes.items():
        if key in ("project_id", "tenant_id"):
            continue
        if value is not None or key in nullable:
            setattr(row, key, value)
