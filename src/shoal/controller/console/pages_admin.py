"""Admin pages: nodes and clusters (applied position, table digests agreeing or not, flood
and BGP state), events, quotas. The API refuses non-admins; the page shows its line."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from shoal.controller.console.apiclient import ApiFailureError
from shoal.controller.console.context import Console, ConsoleDep
from shoal.controller.db.models import Node
from shoal.controller.services.writes import current_seq

router = APIRouter()
FLOOD_KINDS = ("flood_mode_entered", "flood_mode_exited")  # what L4 agents report
QUOTA_KEYS = ("load_balancer", "listener", "pool", "member", "healthmonitor", "l7policy", "l7rule")


def digest_agreement(nodes: list[dict[str, Any]]) -> dict[tuple[str, str], bool]:
    """(cluster, load balancer) -> whether every node of that cluster holding it has the
    same table digests (the Maglev tables agree, so any node picks the same backend)."""
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for node in nodes:
        for lb_id, vips in (node.get("digests") or {}).items():
            key = (node["cluster"], lb_id)
            seen[key].add(repr(sorted(vips.items())) if isinstance(vips, dict) else repr(vips))
    return {key: len(values) == 1 for key, values in seen.items()}


def _extra(c: Console) -> tuple[dict[str, dict[str, Any]], int]:
    """What the nodes' reports hold beyond the API's node view: flood state (the node view
    carries the routing state already)."""
    with c.state.db.read() as session:
        extra = {}
        for node in session.scalars(select(Node)):
            counters = node.counters or {}
            extra[node.id] = {"flood": counters.get("flood")}
        return extra, current_seq(session)


@router.get("/admin/nodes")
async def nodes(c: ConsoleDep) -> HTMLResponse:
    try:
        rows = (await c.api.get("/v2/shoal/nodes"))["nodes"]
        clusters = (await c.api.get("/v2/shoal/clusters"))["clusters"]
        floods = []
        for kind in FLOOD_KINDS:
            floods += (await c.api.get("/v2/shoal/events", kind=kind, limit=20))["events"]
        floods.sort(key=lambda e: -int(e["id"]))
    except ApiFailureError as exc:
        return c.page("message.html", exc.status, title="Nodes", message=exc.line)
    extra, seq = _extra(c)
    agreement = digest_agreement(rows)
    for row in rows:
        row.update(extra.get(row["id"], {}))
        row["lag"] = max(0, seq - int(row.get("applied_seq") or 0))
        mine = [agreement[(row["cluster"], lb)] for lb in (row.get("digests") or {})]
        row["digests_agree"] = all(mine) if mine else None
    return c.page(
        "nodes.html", nodes=rows, clusters=clusters, floods=floods, seq=seq, agreement=agreement
    )


@router.get("/admin/events")
async def events(
    c: ConsoleDep,
    kind: Annotated[str, Query(max_length=64)] = "",
    load_balancer_id: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    try:
        rows = (
            await c.api.get(
                "/v2/shoal/events", kind=kind, load_balancer_id=load_balancer_id, limit=200
            )
        )["events"]
    except ApiFailureError as exc:
        return c.page("message.html", exc.status, title="Events", message=exc.line)
    return c.page("events.html", events=rows, kind=kind, load_balancer_id=load_balancer_id)


async def _quotas(c: Console, status: int = 200, notice: str = "", error: str = "") -> HTMLResponse:
    try:
        rows = (await c.api.get("/v2/lbaas/quotas"))["quotas"]
        defaults = (await c.api.get("/v2/lbaas/quotas/defaults"))["quota"]
    except ApiFailureError as exc:
        return c.page("message.html", exc.status, title="Quotas", message=exc.line)
    return c.page(
        "quotas.html",
        status,
        quotas=rows,
        defaults=defaults,
        keys=QUOTA_KEYS,
        notice=notice,
        error=error,
    )


@router.get("/admin/quotas")
async def quotas(c: ConsoleDep) -> HTMLResponse:
    return await _quotas(c)


@router.post("/admin/quotas")
async def set_quota(c: ConsoleDep) -> HTMLResponse:
    form = await c.form()
    project = form.get("project_id", "").strip()
    body: dict[str, Any] = {}
    for key in QUOTA_KEYS:
        value = form.get(key, "").strip()
        if value:
            body[key] = int(value) if value.lstrip("-").isdigit() else value
    if not project:
        return await _quotas(c, 400, error="give the project id whose quota to set")
    try:
        await c.api.call("PUT", f"/v2/lbaas/quotas/{project}", {"quota": body})
    except ApiFailureError as exc:
        return await _quotas(c, exc.status, error=exc.line)
    return await _quotas(c, notice=f"Quota of project {project} set")
