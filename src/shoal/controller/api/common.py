"""Listing as Octavia does it (filters on any attribute, tags, sort, marker paging, links,
fields=), and response helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Boolean, Float, Integer, and_, exists, func, not_, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from shoal.controller.auth import Principal
from shoal.controller.errors import BadRequest

__all__ = [
    "etag_headers",
    "etag_response",
    "list_collection",
    "name_taken",
    "select_fields",
    "written",
]

# Query parameters that steer the listing rather than filter it (Octavia's auxiliary ones).
RESERVED = frozenset({"limit", "marker", "page_reverse", "fields", "sort", "sort_key", "sort_dir"})
TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")
# API names that are a differently named column.
ALIASES = {"tenant_id": "project_id", "loadbalancer_id": "load_balancer_id"}
MAX_LIMIT = 1000
# Attributes every Octavia view renders as the bare column value: a listing asking only for
# these (a watcher's fields=id,provisioning_status) is answered from the columns, without
# loading and rendering each object's tree.
VERBATIM_FIELDS = frozenset({"id", "project_id", "provisioning_status"})
DEFAULT_SORT_KEYS = ("created_at", "id")
INVALID_FILTER = "One or more arguments are either duplicate or invalid"


def _coerce(column: Any, key: str, raw: str) -> Any:
    if isinstance(column.type, Boolean):
        from shoal.controller.schemas.common import parse_bool

        try:
            return parse_bool(raw)
        except ValueError:
            raise BadRequest(f"Invalid input for field/attribute {key}. Value: {raw!r}.") from None
    if isinstance(column.type, Integer | Float):
        try:
            return float(raw) if isinstance(column.type, Float) else int(raw)
        except ValueError:
            raise BadRequest(f"Invalid input for field/attribute {key}. Value: {raw!r}.") from None
    return raw


# Bookkeeping columns that are not part of Octavia's objects: neither filters nor sort keys.
INTERNAL = frozenset(
    {
        "l4_protocol",
        "kind",
        "health",
        "health_streak",
        "health_detail",
        "health_changed_at",
        "revision",
        "revision_seq",
        "current_config",
        "provisioning_reason",
        "pending_since",
    }
)


def _columns(model: Any) -> dict[str, Any]:
    return {
        c.key: getattr(model, c.key) for c in model.__mapper__.column_attrs if c.key not in INTERNAL
    }


def _tag_values(params: Any, key: str) -> list[str]:
    return [t for raw in params.getlist(key) for t in raw.split(",") if t]


def _has_tag(session: Session, model: Any, tag: str) -> ColumnElement[bool]:
    """model.tags (a JSON list) holds exactly this tag, on SQLite and PostgreSQL alike."""
    if session.get_bind().dialect.name == "postgresql":
        elements = func.json_array_elements_text(model.tags).table_valued("value")
    else:
        elements = func.json_each(model.tags).table_valued("value")
    return exists(select(1).select_from(elements).where(elements.c.value == tag))


def _sort_keys(params: Any) -> list[tuple[str, bool]]:
    """(key, descending) pairs from sort=k1:dir,k2 or sort_key=/sort_dir=."""

    def direction(raw: str) -> bool:
        d = raw.lower()
        if d not in ("asc", "desc"):
            raise BadRequest(f"Supplied sort direction '{raw}' is not valid.")
        return d == "desc"

    pairs: list[tuple[str, bool]] = []
    if params.get("sort"):
        for item in params["sort"].split(","):
            parts = item.split(":")
            if len(parts) > 2 or not parts[0]:
                raise BadRequest(f"Supplied sort key '{item}' is not valid.")
            pairs.append((parts[0], direction(parts[1]) if len(parts) == 2 else False))
    elif params.get("sort_key"):
        keys = params["sort_key"].split(",")
        dirs = params.get("sort_dir", "").split(",") if params.get("sort_dir") else []
        dirs += ["asc"] * (len(keys) - len(dirs))
        pairs = [(k, direction(d)) for k, d in zip(keys, dirs, strict=False)]
    return pairs


def _limit(params: Any) -> int:
    raw = params.get("limit")
    if raw is None:
        return MAX_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"Supplied pagination limit '{raw}' is not valid.") from None
    return MAX_LIMIT if value < 1 else min(value, MAX_LIMIT)  # Octavia: <1 means no limit


def list_collection(
    session: Session,
    model: Any,
    principal: Principal,
    request: Request,
    query: Select[Any],
    view: Callable[[Any], dict[str, Any]],
    collection: str,
    computed: Sequence[str] = ("operating_status",),
    scoped: bool = True,
    links_key: str | None = None,
    default_sort: Sequence[str] = DEFAULT_SORT_KEYS,
    verbatim: frozenset[str] = VERBATIM_FIELDS,
) -> dict[str, Any]:
    """One page of the rows of `query` that principal may see, as Octavia lists them.

    A parameter naming a column filters in SQL; one naming a computed attribute (operating
    status) filters the rendered objects; any other is refused (400), never ignored: a
    misspelt filter must not return everything to a script that deletes what it lists.
    scoped=False: the rows belong to no project (flavors, zones), everyone lists them all.
    verbatim: the fields view renders as the bare column (see VERBATIM_FIELDS)."""
    params = request.query_params
    columns = _columns(model)
    q = query
    # Admins and global observers read every project; flavors and zones belong to none.
    if scoped and not principal.reads_all_projects:
        q = q.where(model.project_id == principal.project_id)
    post: dict[str, str] = {}
    for key in params:
        if key in RESERVED or key in TAG_FILTERS:
            continue
        values = params.getlist(key)
        if len(values) > 1:
            raise BadRequest(INVALID_FILTER)
        name = ALIASES.get(key, key)
        if name in columns and name != "tags":
            column = columns[name]
            q = q.where(column == _coerce(column, key, values[0]))
        elif key in computed:
            post[key] = values[0]
        else:
            raise BadRequest(INVALID_FILTER)
    if "tags" in columns:
        for tag in _tag_values(params, "tags"):
            q = q.where(_has_tag(session, model, tag))
        if any_tags := _tag_values(params, "tags-any"):
            q = q.where(or_(*(_has_tag(session, model, t) for t in any_tags)))
        if not_all := _tag_values(params, "not-tags"):
            q = q.where(not_(and_(*(_has_tag(session, model, t) for t in not_all))))
        for tag in _tag_values(params, "not-tags-any"):
            q = q.where(not_(_has_tag(session, model, tag)))

    keys = _sort_keys(params)
    named = {k for k, _ in keys}
    keys += [(k, False) for k in default_sort if k not in named]
    order = []
    for key, desc in keys:
        column = columns.get(ALIASES.get(key, key))
        if column is None or key == "tags":
            raise BadRequest(f"Supplied sort key '{key}' is not valid.")
        order.append(column.desc() if desc else column.asc())
    # Ids first, in order (cheap), so computed filters and the marker work on the same list.
    ids = list(session.scalars(q.with_only_columns(model.id).order_by(*order)))
    rows_by_id: dict[str, Any] = {}
    if post:
        for chunk in range(0, len(ids), 500):
            batch = ids[chunk : chunk + 500]
            for row in session.scalars(query.where(model.id.in_(batch))):
                item = view(row)
                if all(str(item.get(k)) == v for k, v in post.items()):
                    rows_by_id[row.id] = row
        ids = [i for i in ids if i in rows_by_id]

    limit = _limit(params)
    marker = params.get("marker")
    reverse = params.get("page_reverse", "false").lower() == "true"
    if marker:
        if marker not in ids:
            raise BadRequest(f"Supplied pagination marker '{marker}' is not valid.")
        at = ids.index(marker)
        page_ids = ids[max(0, at - limit) : at] if reverse else ids[at + 1 : at + 1 + limit]
    else:
        page_ids = ids[:limit]
    wanted = _wanted_fields(request)
    if not post and wanted and wanted <= verbatim and wanted <= columns.keys():
        names = sorted(wanted)
        picked = select(model.id, *(columns[f] for f in names)).where(model.id.in_(page_ids))
        by_id = {row[0]: dict(zip(names, row[1:], strict=True)) for row in session.execute(picked)}
        items = [by_id[i] for i in page_ids]
    else:
        if not post:
            fetched: list[Any] = list(session.scalars(query.where(model.id.in_(page_ids))))
            rows_by_id = {r.id: r for r in fetched}
        items = select_fields(request, [view(rows_by_id[i]) for i in page_ids])
    links = _links(request, page_ids, limit, marker)
    return {collection: items, links_key or f"{collection}_links": links}


def _links(request: Request, page: list[str], limit: int, marker: str | None) -> list[Any]:
    if not page:
        return []
    base = [("limit", str(limit))]
    for key in ("sort", "sort_key", "sort_dir"):
        if key in request.query_params:
            base.append((key, request.query_params[key]))
    url = str(request.url.replace(query=""))
    links = []
    if marker:
        prev = [*base, ("marker", page[0]), ("page_reverse", "True")]
        links.append({"rel": "previous", "href": _href(url, prev)})
    if len(page) >= limit:
        links.append({"rel": "next", "href": _href(url, [*base, ("marker", page[-1])])})
    return links


def _href(url: str, query: list[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    return f"{url}?{urlencode(query)}"


def select_fields(request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """fields=a,b or fields=a&fields=b: only those attributes (unknown names are dropped)."""
    wanted = _wanted_fields(request)
    if not wanted:
        return items
    return [{k: v for k, v in item.items() if k in wanted} for item in items]


def _wanted_fields(request: Request) -> set[str]:
    """The attribute names of fields= (comma-separated, repeatable); empty: all of them."""
    return {f for item in request.query_params.getlist("fields") for f in item.split(",") if f}


def name_taken(session: Session, model: Any, name: str | None, current: str | None = None) -> bool:
    """Another row of model already has this name (None, or the row's own name: no)."""
    if not name or name == current:
        return False
    return bool(session.scalar(select(model.id).where(model.name == name)))


def etag_response(
    body: dict[str, Any], revision: int, status_code: int = 200, request: Request | None = None
) -> Response:
    """A JSON response whose ETag is the load balancer's revision (for If-Match); with the
    request, fields= applies to the one object it holds."""
    if request is not None and request.query_params.get("fields"):
        ((key, obj),) = body.items()
        body = {key: select_fields(request, [obj])[0]}
    return JSONResponse(body, status_code=status_code, headers=etag_headers(revision))


def etag_headers(revision: int) -> dict[str, str]:
    return {"ETag": f'"{revision}"'}


def written(status_code: int, revision: int) -> Response:
    """An empty answer to a write (202, 204) that still tells the revision it made, so the
    next write can carry If-Match without a GET in between."""
    return Response(status_code=status_code, headers=etag_headers(revision))
