"""Listing, filtering and paging as Octavia does it; response helpers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Boolean, Integer, and_, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from shoal.controller.auth import Principal
from shoal.controller.errors import BadRequest

__all__ = ["etag_headers", "etag_response", "list_response", "paged_query", "written"]

RESERVED = {
    "limit",
    "marker",
    "page_reverse",
    "fields",
    "sort",
    "sort_key",
    "sort_dir",
    "project_id",
    "tenant_id",
}


def _coerce(column: Any, key: str, raw: str) -> Any:
    if isinstance(column.type, Boolean):
        if raw.lower() not in ("true", "false", "1", "0"):
            raise BadRequest(
                f"Invalid input for field/attribute {key}. Value: {raw!r}. Expected a boolean"
            )
        return raw.lower() in ("true", "1")
    if isinstance(column.type, Integer):
        try:
            return int(raw)
        except ValueError:
            raise BadRequest(
                f"Invalid input for field/attribute {key}. Value: {raw!r}. Expected an integer"
            ) from None
    return raw


def paged_query(
    session: Session,
    model: Any,
    principal: Principal,
    request: Request,
    query: Select[Any] | None = None,
    filterable: Sequence[str] = (),
) -> tuple[list[Any], int]:
    """Rows of model visible to principal, filtered by query parameters, one page of them.
    Returns (rows, limit)."""
    params = request.query_params
    q = query if query is not None else select(model)
    project = params.get("project_id") or params.get("tenant_id")
    if not principal.reads_all_projects:
        q = q.where(model.project_id == principal.project_id)
    elif project:
        q = q.where(model.project_id == project)
    for key in filterable:
        if key in params:
            column = getattr(model, key)
            q = q.where(column == _coerce(column, key, params[key]))
    raw_limit = params.get("limit", "1000")
    if not raw_limit.isdigit() or int(raw_limit) < 1:
        raise BadRequest(
            f"Invalid input for field/attribute limit. Value: {raw_limit!r}. "
            "Expected a positive integer"
        )
    limit = min(int(raw_limit), 1000)
    reverse = params.get("page_reverse", "false").lower() == "true"
    marker = params.get("marker")
    if marker:
        row = session.get(model, marker)
        if row is None or not principal.can_read(row.project_id):
            raise BadRequest(f"marker {marker} is not a visible {model.__tablename__} id")
        at: dt.datetime = row.created_at
        after = or_(model.created_at > at, and_(model.created_at == at, model.id > marker))
        before = or_(model.created_at < at, and_(model.created_at == at, model.id < marker))
        q = q.where(before if reverse else after)
    order = (model.created_at.desc(), model.id.desc()) if reverse else (model.created_at, model.id)
    rows = list(session.scalars(q.order_by(*order).limit(limit)))
    if reverse:
        rows.reverse()
    return rows, limit


def list_response(
    request: Request,
    collection: str,
    rows: Sequence[Any],
    view: Callable[[Any], dict[str, Any]],
    limit: int,
) -> dict[str, Any]:
    items = [view(r) for r in rows]
    fields = request.query_params.getlist("fields")
    if fields:
        wanted = {f for item in fields for f in item.split(",")}
        items = [{k: v for k, v in item.items() if k in wanted} for item in items]
    links = []
    if rows and len(rows) == limit:
        url = request.url.include_query_params(marker=rows[-1].id, limit=limit)
        links.append({"rel": "next", "href": str(url)})
    return {collection: items, f"{collection}_links": links}


def etag_headers(revision: int) -> dict[str, str]:
    return {"ETag": f'"{revision}"'}


def etag_response(body: dict[str, Any], revision: int, status_code: int = 200) -> Response:
    """A JSON response whose ETag is the load balancer's revision (for If-Match)."""
    return JSONResponse(body, status_code=status_code, headers=etag_headers(revision))


def written(status_code: int, revision: int) -> Response:
    """An empty answer to a write (202, 204) that still tells the revision it made, so the
    next write can carry If-Match without a GET in between."""
    return Response(status_code=status_code, headers=etag_headers(revision))
