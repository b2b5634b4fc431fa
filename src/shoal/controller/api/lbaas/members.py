"""Members of a pool, one at a time or as a batch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from shoal.controller import views
from shoal.controller.api.common import etag_response, list_collection, written
from shoal.controller.api.deps import CurrentPrincipal, IfMatch, State
from shoal.controller.api.lbaas._shared import apply_fields, get_visible, lb_id_for, renderer
from shoal.controller.db.models import Member, Pool
from shoal.controller.errors import Conflict, NotFound
from shoal.controller.schemas.member import (
    MemberCreate,
    MemberCreateBody,
    MembersBatchBody,
    MemberUpdateBody,
)
from shoal.controller.services.writes import WriteContext

router = APIRouter(tags=["members"])
_render = renderer(Member, views.member, "member")


def _pool(ctx: WriteContext, pool_id: str) -> Pool:
    return next(p for p in ctx.lb.pools if p.id == pool_id)


def _member(pool: Pool, member_id: str) -> Member:
    for m in pool.members:
        if m.id == member_id:
            return m
    raise NotFound.of("Member", member_id)


def _new_member(ctx: WriteContext, pool: Pool, spec: MemberCreate) -> Member:
    for m in pool.members:
        if m.address == spec.address and m.protocol_port == spec.protocol_port:
            raise Conflict(
                f"Another member on this pool is already using ip address "
                f"{spec.address} on protocol_port {spec.protocol_port}"
            )
    member = Member(
        project_id=ctx.lb.project_id, address=spec.address, protocol_port=spec.protocol_port
    )
    member.address_given = spec.address_given
    apply_fields(member, spec.model_dump(exclude={"address", "protocol_port"}))
    member.monitor_address_given = spec.monitor_address_given
    pool.members.append(member)
    return member


@router.get("/pools/{pool_id}/members")
def list_members(
    pool_id: str, request: Request, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    with state.db.read() as session:
        get_visible(session, Pool, pool_id, principal)
        query = (
            select(Member)
            .where(Member.pool_id == pool_id)
            .options(selectinload(Member.pool).selectinload(Pool.healthmonitor))
        )
        return list_collection(session, Member, principal, request, query, views.member, "members")


@router.post("/pools/{pool_id}/members", status_code=201)
def create_member(
    pool_id: str, body: MemberCreateBody, state: State, principal: CurrentPrincipal, expect: IfMatch
) -> Response:
    lb_id = lb_id_for(state, principal, Pool, pool_id)
    with state.writer.change(lb_id, principal, action="create", expect_revision=expect) as ctx:
        pool = _pool(ctx, pool_id)
        member = _new_member(ctx, pool, body.member)
        ctx.session.flush()
        ctx.pending(member, "PENDING_CREATE")
        ctx.touched.add("member")
        ctx.resource = ("member", member.id)
        ctx.respond = lambda: {"member": views.member(member)}
    return etag_response(ctx.body, ctx.revision, 201)


@router.put("/pools/{pool_id}/members", status_code=202)
def batch_update_members(
    pool_id: str, body: MembersBatchBody, state: State, principal: CurrentPrincipal, expect: IfMatch
) -> Response:
    """Makes the pool's members exactly the given list (matched by address and port): new
    ones are created, listed ones updated, the others removed. One revision."""
    lb_id = lb_id_for(state, principal, Pool, pool_id)
    with state.writer.change(
        lb_id,
        principal,
        action="update",
        expect_revision=expect,
        message=f"batch update of pool {pool_id} members",
    ) as ctx:
        pool = _pool(ctx, pool_id)
        existing = {(m.address, m.protocol_port): m for m in pool.members}
        seen = set()
        for spec in body.members:
            key = (spec.address, spec.protocol_port)
            if key in seen:
                raise Conflict(f"member {spec.address}:{spec.protocol_port} is listed twice")
            seen.add(key)
            member = existing.get(key)
            if member is None:
                member = _new_member(ctx, pool, spec)
                ctx.pending(member, "PENDING_CREATE")
            else:
                apply_fields(member, spec.model_dump(exclude={"address", "protocol_port"}))
                member.monitor_address_given = spec.monitor_address_given
                ctx.pending(member)
        for key, member in existing.items():
            if key not in seen:
                pool.members.remove(member)
        ctx.touched.add("member")
        ctx.resource = ("pool", pool_id)
    return written(202, ctx.revision)


@router.get("/pools/{pool_id}/members/{member_id}")
def get_member(
    pool_id: str, member_id: str, request: Request, state: State, principal: CurrentPrincipal
) -> Response:
    with state.db.read() as session:
        member = get_visible(session, Member, member_id, principal)
        if member.pool_id != pool_id:
            raise NotFound.of("Member", member_id)
    return _render(state, principal, member_id, request=request)


@router.put("/pools/{pool_id}/members/{member_id}")
def update_member(
    pool_id: str,
    member_id: str,
    body: MemberUpdateBody,
    state: State,
    principal: CurrentPrincipal,
    expect: IfMatch,
) -> Response:
    lb_id = lb_id_for(state, principal, Pool, pool_id)
    with state.writer.change(lb_id, principal, action="update", expect_revision=expect) as ctx:
        member = _member(_pool(ctx, pool_id), member_id)
        apply_fields(
            member,
            body.member.model_dump(exclude_unset=True),
            frozenset({"monitor_address", "monitor_port"}),
        )
        if "monitor_address" in body.member.model_fields_set:
            member.monitor_address_given = None  # shown canonical from now on
        ctx.pending(member)
        ctx.resource = ("member", member_id)
        ctx.respond = lambda: {"member": views.member(member)}
    return etag_response(ctx.body, ctx.revision)


@router.delete("/pools/{pool_id}/members/{member_id}", status_code=204)
def delete_member(
    pool_id: str, member_id: str, state: State, principal: CurrentPrincipal, expect: IfMatch
) -> Response:
    lb_id = lb_id_for(state, principal, Pool, pool_id)
    with state.writer.change(lb_id, principal, action="delete", expect_revision=expect) as ctx:
        pool = _pool(ctx, pool_id)
        pool.members.remove(_member(pool, member_id))
        ctx.resource = ("member", member_id)
    return written(204, ctx.revision)
