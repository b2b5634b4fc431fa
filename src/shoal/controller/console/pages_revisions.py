"""Revisions: the history, a side-by-side diff, and rollback after a confirmation."""

from __future__ import annotations

import difflib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from shoal.controller.console.apiclient import ApiFailureError
from shoal.controller.console.context import ConsoleDep
from shoal.controller.console.pages_lb import detail_page, done

router = APIRouter()


@router.get("/loadbalancers/{lb_id}/revisions")
async def history(lb_id: str, c: ConsoleDep) -> HTMLResponse:
    try:
        lb = (await c.api.get(f"/v2/lbaas/loadbalancers/{lb_id}"))["loadbalancer"]
        revisions = (await c.api.get(f"/v2/shoal/loadbalancers/{lb_id}/revisions"))["revisions"]
    except ApiFailureError as exc:
        return c.page("message.html", exc.status, title="Revisions", message=exc.line)
    return c.page("revisions.html", lb=lb, revisions=revisions)


def side_by_side(old: Any, new: Any) -> list[dict[str, Any]]:
    """Rows of (left line, right line, kind) aligning the two configurations' JSON."""
    left = json.dumps(old, indent=2, sort_keys=True).splitlines() if old is not None else []
    right = json.dumps(new, indent=2, sort_keys=True).splitlines() if new is not None else []
    rows: list[dict[str, Any]] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        for i in range(max(a1 - a0, b1 - b0)):
            li, ri = a0 + i, b0 + i
            rows.append(
                {
                    "kind": tag,
                    "left_no": li + 1 if li < a1 else None,
                    "left": left[li] if li < a1 else "",
                    "right_no": ri + 1 if ri < b1 else None,
                    "right": right[ri] if ri < b1 else "",
                }
            )
    return rows


@router.get("/loadbalancers/{lb_id}/revisions/{number}/diff")
async def diff_page(
    lb_id: str,
    number: int,
    c: ConsoleDep,
    against: Annotated[int | None, Query()] = None,
) -> HTMLResponse:
    base = f"/v2/shoal/loadbalancers/{lb_id}/revisions"
    try:
        summary = await c.api.get(f"{base}/{number}/diff", against=against)
        new = (await c.api.get(f"{base}/{number}"))["revision"]
        old = None
        if summary["from"] is not None:
            old = (await c.api.get(f"{base}/{summary['from']}"))["revision"]
    except ApiFailureError as exc:
        return c.page("message.html", exc.status, title="Diff", message=exc.line)
    rows = side_by_side(old["config"] if old else None, new["config"])
    return c.page("diff.html", lb_id=lb_id, summary=summary, old=old, new=new, rows=rows)


@router.get("/loadbalancers/{lb_id}/revisions/{number}/rollback")
async def confirm_rollback(lb_id: str, number: int, c: ConsoleDep) -> HTMLResponse:
    try:
        reply = await c.api.call("GET", f"/v2/lbaas/loadbalancers/{lb_id}")
        lb = reply.body["loadbalancer"]
        summary = await c.api.get(  # what the rollback will change: current -> target
            f"/v2/shoal/loadbalancers/{lb_id}/revisions/{number}/diff", against=reply.revision
        )
    except ApiFailureError as exc:
        return c.page("message.html", exc.status, title="Roll back", message=exc.line)
    return c.page("rollback.html", lb=lb, number=number, current=reply.revision, summary=summary)


@router.post("/loadbalancers/{lb_id}/revisions/{number}/rollback")
async def rollback(lb_id: str, number: int, c: ConsoleDep) -> Response:
    form = await c.form()
    body = {"message": form["message"]} if form.get("message") else None
    try:
        reply = await c.api.call(
            "POST", f"/v2/shoal/loadbalancers/{lb_id}/revisions/{number}/rollback", body
        )
    except ApiFailureError as exc:
        return await detail_page(c, lb_id, exc.status, error=exc.line)
    return done(lb_id, "rolledback", reply.revision)
