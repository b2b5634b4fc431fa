"""Load balancers: the filtered, paged list; the detail page with its status tree, members
and live traffic; the member actions (add, drain, weight, remove)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select

from shoal.controller.console.apiclient import ApiFailureError
from shoal.controller.console.context import Console, ConsoleDep, security_headers
from shoal.controller.console.l4traffic import member_traffic
from shoal.controller.db.models import LoadBalancer, Node

router = APIRouter()
PAGE = 50  # rows per page: the list stays fast at any fleet size (the API pages in SQL)
STATUSES = ("ACTIVE", "PENDING_CREATE", "PENDING_UPDATE", "PENDING_DELETE", "ERROR", "DELETED")
OPERATING = ("ONLINE", "DEGRADED", "OFFLINE", "ERROR", "NO_MONITOR", "DRAINING")
Filter = Annotated[str, Query(max_length=255)]


@router.get("/loadbalancers")
async def list_page(
    c: ConsoleDep,
    name: Filter = "",
    provisioning_status: Filter = "",
    operating_status: Filter = "",
    marker: Filter = "",
) -> HTMLResponse:
    filters = {
        "name": name,
        "provisioning_status": provisioning_status,
        "operating_status": operating_status,
    }
    error, rows, next_marker = "", [], ""
    try:
        body = await c.api.get(
            "/v2/lbaas/loadbalancers", limit=PAGE, marker=marker, sort="name:asc", **filters
        )
        rows = body["loadbalancers"]
        if any(link.get("rel") == "next" for link in body.get("loadbalancers_links", [])):
            next_marker = rows[-1]["id"] if rows else ""
    except ApiFailureError as exc:
        error = exc.line
    return c.page(
        "lb_list.html",
        200 if not error else 400,
        rows=rows,
        filters=filters,
        statuses=STATUSES,
        operating=OPERATING,
        next_marker=next_marker,
        marker=marker,
        error=error,
    )


async def _detail(c: Console, lb_id: str) -> dict[str, Any]:
    reply = await c.api.call("GET", f"/v2/lbaas/loadbalancers/{lb_id}")
    lb = {**reply.body["loadbalancer"], "revision": reply.revision}
    tree = (await c.api.get(f"/v2/lbaas/loadbalancers/{lb_id}/status"))["statuses"]
    pools = (await c.api.get("/v2/lbaas/pools", loadbalancer_id=lb_id))["pools"]
    for pool in pools:
        pool["member_rows"] = (await c.api.get(f"/v2/lbaas/pools/{pool['id']}/members"))["members"]
    return {"lb": lb, "tree": tree["loadbalancer"], "pools": pools}


async def detail_page(
    c: Console, lb_id: str, status: int = 200, notice: str = "", error: str = ""
) -> HTMLResponse:
    try:
        ctx = await _detail(c, lb_id)
    except ApiFailureError as exc:
        return c.page("message.html", exc.status, title="Load balancer", message=exc.line)
    return c.page("lb_detail.html", status, notice=notice, error=error, **ctx)


# What a finished write says on the page it redirects to (by code: no text from the URL).
DONE = {
    "added": "Member added",
    "drained": "Member drained",
    "weight": "Weight set",
    "removed": "Member removed",
    "rolledback": "Rolled back",
}


def done(lb_id: str, code: str, revision: int | None) -> Response:
    """Post, then redirect, then get: a reload never sends the write again."""
    url = f"/ui/loadbalancers/{lb_id}?done={code}&revision={revision or 0}"
    return security_headers(RedirectResponse(url, status_code=303))


@router.get("/loadbalancers/{lb_id}")
async def detail(
    lb_id: str,
    c: ConsoleDep,
    done: Annotated[str, Query(max_length=16)] = "",
    revision: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    notice = f"{DONE[done]}: revision {revision}" if done in DONE else ""
    return await detail_page(c, lb_id, notice=notice)


@router.get("/loadbalancers/{lb_id}/traffic")
async def traffic(lb_id: str, c: ConsoleDep) -> JSONResponse:
    """Counters for the live charts: the load balancer's (the API's stats, which also check
    that the caller may see it) and its members': what L7 nodes report per server, or for an
    L4 load balancer what its L4 nodes report per backend (l4traffic.py). member_metric
    names the counter the member chart plots."""
    try:
        stats = (await c.api.get(f"/v2/lbaas/loadbalancers/{lb_id}/stats"))["stats"]
    except ApiFailureError as exc:
        return JSONResponse({"error": exc.line}, status_code=exc.status)
    members: dict[str, dict[str, int]] = {}
    packets = 0
    with c.state.db.read() as session:
        nodes = list(session.scalars(select(Node)))
        lb = session.get(LoadBalancer, lb_id)
        l4 = lb is not None and lb.kind == "l4"
        for node in nodes:
            entry = (node.lb_traffic or {}).get(lb_id, {})
            packets += int(entry.get("packets_in", 0))
            for member_id, m in entry.get("members", {}).items():
                total = members.setdefault(str(member_id), dict.fromkeys(MEMBER_KEYS, 0))
                for key in MEMBER_KEYS:
                    total[key] += int(m.get(key, 0))
        if l4:
            reports = (n.backend_traffic for n in nodes if n.role == "l4")
            members = member_traffic(session, lb_id, reports)
    body = {
        "time": time.time(),
        "vip": {**stats, "packets_in": packets},
        "members": members,
        "member_metric": "packets_in" if l4 else "total_connections",
    }
    return security_headers(JSONResponse(body))  # type: ignore[return-value]


MEMBER_KEYS = ("bytes_in", "bytes_out", "total_connections")


def _member_body(form: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"address": form.get("address", "").strip()}
    for key in ("protocol_port", "weight"):
        value = form.get(key, "").strip()
        if value:
            body[key] = int(value) if value.lstrip("-").isdigit() else value
    if form.get("name", "").strip():
        body["name"] = form["name"].strip()
    return body


@router.post("/loadbalancers/{lb_id}/pools/{pool_id}/members")
async def add_member(lb_id: str, pool_id: str, c: ConsoleDep) -> Response:
    form = await c.form()
    try:
        reply = await c.api.call(
            "POST", f"/v2/lbaas/pools/{pool_id}/members", {"member": _member_body(form)}
        )
    except ApiFailureError as exc:
        return await detail_page(c, lb_id, exc.status, error=exc.line)
    return done(lb_id, "added", reply.revision)


@router.post("/loadbalancers/{lb_id}/pools/{pool_id}/members/{member_id}")
async def member_action(lb_id: str, pool_id: str, member_id: str, c: ConsoleDep) -> Response:
    form = await c.form()
    action = form.get("action", "")
    path = f"/v2/lbaas/pools/{pool_id}/members/{member_id}"
    try:
        if action == "remove":
            reply = await c.api.call("DELETE", path)
            code = "removed"
        elif action in ("drain", "weight"):
            raw = "0" if action == "drain" else form.get("weight", "").strip()
            weight: Any = int(raw) if raw.isdigit() else raw
            reply = await c.api.call("PUT", path, {"member": {"weight": weight}})
            code = "drained" if action == "drain" else "weight"
        else:
            return await detail_page(c, lb_id, 400, error=f"unknown member action {action!r}")
    except ApiFailureError as exc:
        return await detail_page(c, lb_id, exc.status, error=exc.line)
    return done(lb_id, code, reply.revision)
