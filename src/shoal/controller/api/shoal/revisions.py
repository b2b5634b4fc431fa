"""Revisions of a load balancer: list, show, diff, roll back; and the flow trace."""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import Field
from sqlalchemy import select

from shoal.controller.api.common import etag_response
from shoal.controller.api.deps import CurrentPrincipal, IfMatch, State
from shoal.controller.db.models import LoadBalancer, Revision
from shoal.controller.errors import BadRequest, NotFound
from shoal.controller.schemas.common import OctaviaModel, Port
from shoal.controller.services import diff, tree
from shoal.controller.services.flowtrace import trace_flow

router = APIRouter(tags=["revisions"])
MAX_INT = 2**31 - 1  # every integer the database stores fits a 32-bit column
RevisionNumber = Annotated[int, Path(ge=1, le=MAX_INT)]


def _view(rev: Revision, with_config: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "load_balancer_id": rev.load_balancer_id,
        "number": rev.number,
        "parent": rev.parent,
        "author": rev.author,
        "message": rev.message,
        "created_at": rev.created_at.strftime("%Y-%m-%dT%H:%M:%S"),
        "digest": rev.digest,
        "deleted": rev.config == "null",
        "request_id": rev.request_id,  # the API call that published it
    }
    if with_config:
        out["config"] = json.loads(rev.config)
    return out


def _revision(session: Any, principal: CurrentPrincipal, lb_id: str, number: int) -> Revision:
    rev = session.scalar(
        select(Revision).where(Revision.load_balancer_id == lb_id, Revision.number == number)
    )
    if rev is None or not principal.can_read(rev.project_id):
        raise NotFound(f"Revision {number} of load balancer {lb_id} could not be found.")
    return rev  # type: ignore[no-any-return]


@router.get("/loadbalancers/{lb_id}/revisions")
def list_revisions(lb_id: str, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    with state.db.read() as session:
        revs = list(
            session.scalars(
                select(Revision)
                .where(Revision.load_balancer_id == lb_id)
                .order_by(Revision.number.desc())
            )
        )
        visible = [r for r in revs if principal.can_read(r.project_id)]
        if not visible:
            raise NotFound.of("Load Balancer", lb_id)
        return {"revisions": [_view(r) for r in visible]}


@router.get("/loadbalancers/{lb_id}/revisions/{number}")
def get_revision(
    lb_id: str, number: RevisionNumber, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    with state.db.read() as session:
        return {"revision": _view(_revision(session, principal, lb_id, number), True)}


@router.get("/loadbalancers/{lb_id}/revisions/{number}/diff")
def diff_revision(
    lb_id: str,
    number: RevisionNumber,
    state: State,
    principal: CurrentPrincipal,
    against: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
) -> dict[str, Any]:
    """What changed from revision `against` (default: its parent) to revision `number`."""
    with state.db.read() as session:
        new = _revision(session, principal, lb_id, number)
        base_number = against if against is not None else new.parent
        old_config = None
        if base_number is not None:
            old_config = json.loads(_revision(session, principal, lb_id, base_number).config)
        changes = diff.diff_configs(old_config, json.loads(new.config))
        return {
            "from": base_number,
            "to": number,
            "changes": changes,
            "text": diff.render_text(changes),
        }


class RollbackBody(OctaviaModel):
    message: str = Field(default="", max_length=1000)


@router.post("/loadbalancers/{lb_id}/revisions/{number}/rollback", status_code=201)
def rollback(
    lb_id: str,
    number: RevisionNumber,
    state: State,
    principal: CurrentPrincipal,
    expect: IfMatch,
    body: RollbackBody | None = None,
) -> Response:
    """A new revision whose configuration equals revision `number`'s."""
    with state.db.read() as session:
        target = _revision(session, principal, lb_id, number)
        config = json.loads(target.config)
    if config is None:
        raise BadRequest(f"revision {number} is a deletion; roll back to an earlier one")
    message = body.message if body and body.message else f"rollback to revision {number}"
    with state.writer.change(
        lb_id, principal, action="rollback", expect_revision=expect, message=message
    ) as ctx:
        tree.materialize(ctx.session, ctx.lb, config)
        ctx.touched.update({"listener", "pool", "member", "healthmonitor", "l7policy", "l7rule"})
        for row in ctx.lb.listeners + ctx.lb.pools:
            ctx.pending(row)
        ctx.resource = ("loadbalancer", lb_id)
    with state.db.read() as session:
        lb = session.get(LoadBalancer, lb_id)
        assert lb is not None
        rev = _revision(session, principal, lb_id, lb.revision)
        return etag_response({"revision": _view(rev)}, lb.revision, 201)


class FlowTraceBody(OctaviaModel):
    source_ip: str = Field(max_length=64)
    source_port: Port
    protocol_port: Port
    protocol: Literal["TCP", "UDP"] = "TCP"


@router.post("/loadbalancers/{lb_id}/flow-trace")
def flow_trace(
    lb_id: str, body: FlowTraceBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Which member a new flow reaches on an L4 load balancer, or which L7 node on an L7 one
    (Maglev, as every L4 node computes it; an existing flow stays where the session cache
    keeps it)."""
    try:
        ipaddress.ip_address(body.source_ip)
    except ValueError:
        raise BadRequest(
            f"Invalid input for field/attribute source_ip. Value: "
            f"{body.source_ip!r}. Not an IP address"
        ) from None
    with state.db.read() as session:
        lb = session.get(LoadBalancer, lb_id)
        if lb is None or not principal.can_read(lb.project_id):
            raise NotFound.of("Load Balancer", lb_id)
        return {
            "flow_trace": trace_flow(
                session,
                lb,
                body.source_ip,
                body.source_port,
                body.protocol_port,
                body.protocol,
                state.settings,
            )
        }
