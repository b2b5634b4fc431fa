"""L7 policies and their rules."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from shoal.controller import views
from shoal.controller.api.common import list_collection, written
from shoal.controller.api.deps import CurrentPrincipal, IfMatch, State
from shoal.controller.api.lbaas._shared import (
    apply_fields,
    get_visible,
    lb_id_for,
    render,
)
from shoal.controller.db.models import L7Policy, L7Rule, Listener
from shoal.controller.errors import NotFound
from shoal.controller.schemas.l7 import (
    L7PolicyCreateBody,
    L7PolicyUpdateBody,
    L7RuleCreate,
    L7RuleCreateBody,
    L7RuleUpdateBody,
)
from shoal.controller.services.writes import WriteContext

router = APIRouter(tags=["l7policies"])
CLEARABLE = frozenset({"redirect_pool_id", "redirect_url", "redirect_prefix", "redirect_http_code"})


def _policy(ctx: WriteContext, policy_id: str) -> L7Policy:
    for li in ctx.lb.listeners:
        for p in li.l7policies:
            if p.id == policy_id:
                return p
    raise NotFound.of("L7 Policy", policy_id)


def _new_rule(ctx: WriteContext, spec: L7RuleCreate) -> L7Rule:
    rule = L7Rule(
        project_id=ctx.lb.project_id,
        type=spec.type,
        compare_type=spec.compare_type,
        value=spec.value,
    )
    apply_fields(rule, spec.model_dump())
    return rule


def _renumber(listener: Listener, moved: L7Policy, position: int | None) -> None:
    """Positions stay 1..n: a policy inserted at k pushes the later ones down."""
    others = [p for p in sorted(listener.l7policies, key=lambda p: p.position) if p is not moved]
    index = len(others) if position is None else max(0, min(position - 1, len(others)))
    others.insert(index, moved)
    for i, p in enumerate(others, start=1):
        p.position = i


@router.get("/l7policies")
def list_l7policies(request: Request, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    with state.db.read() as session:
        query = select(L7Policy).options(selectinload(L7Policy.rules))
        return list_collection(
            session, L7Policy, principal, request, query, views.l7policy, "l7policies"
        )


@router.post("/l7policies", status_code=201)
def create_l7policy(
    body: L7PolicyCreateBody, state: State, principal: CurrentPrincipal, expect: IfMatch
) -> Response:
    spec = body.l7policy
    lb_id = lb_id_for(state, principal, Listener, spec.listener_id)
    with state.writer.change(lb_id, principal, action="create", expect_revision=expect) as ctx:
        li = next(x for x in ctx.lb.listeners if x.id == spec.listener_id)
        policy = L7Policy(project_id=ctx.lb.project_id, action=spec.action, position=1)
        apply_fields(policy, spec.model_dump(exclude={"listener_id", "position", "rules"}))
        for r in spec.rules:  # Octavia's inline rules: created with the policy
            policy.rules.append(_new_rule(ctx, r))
            ctx.touched.add("l7rule")
        li.l7policies.append(policy)
        _renumber(li, policy, spec.position)
        ctx.session.flush()
        ctx.pending(policy, "PENDING_CREATE")
        for rule in policy.rules:
            ctx.pending(rule, "PENDING_CREATE")
        ctx.touched.add("l7policy")
        ctx.resource = ("l7policy", policy.id)
    return render(state, principal, L7Policy, policy.id, views.l7policy, "l7policy", 201)


@router.get("/l7policies/{policy_id}")
def get_l7policy(
    policy_id: str, request: Request, state: State, principal: CurrentPrincipal
) -> Response:
    return render(
        state, principal, L7Policy, policy_id, views.l7policy, "l7policy", request=request
    )


# What each action uses; a change of action clears the rest, as Octavia's update does.
ACTION_FIELDS = {
    "REDIRECT_TO_POOL": {"redirect_pool_id"},
    "REDIRECT_TO_URL": {"redirect_url", "redirect_http_code"},
    "REDIRECT_PREFIX": {"redirect_prefix", "redirect_http_code"},
    "REJECT": set(),
}


def _clear_for_action(policy: L7Policy) -> None:
    for name in CLEARABLE - ACTION_FIELDS.get(policy.action, set()):
        setattr(policy, name, None)


@router.put("/l7policies/{policy_id}")
def update_l7policy(
    policy_id: str,
    body: L7PolicyUpdateBody,
    state: State,
    principal: CurrentPrincipal,
    expect: IfMatch,
) -> Response:
    lb_id = lb_id_for(state, principal, L7Policy, policy_id)
    changes = body.l7policy.model_dump(exclude_unset=True)
    with state.writer.change(lb_id, principal, action="update", expect_revision=expect) as ctx:
        policy = _policy(ctx, policy_id)
        position = changes.pop("position", None)
        apply_fields(policy, changes, CLEARABLE)
        if "action" in changes:
            _clear_for_action(policy)
        if position is not None:
            _renumber(policy.listener, policy, position)
        ctx.pending(policy)
        ctx.resource = ("l7policy", policy_id)
    return render(state, principal, L7Policy, policy_id, views.l7policy, "l7policy")


@router.delete("/l7policies/{policy_id}", status_code=204)
def delete_l7policy(
    policy_id: str, state: State, principal: CurrentPrincipal, expect: IfMatch
) -> Response:
    lb_id = lb_id_for(state, principal, L7Policy, policy_id)
    with state.writer.change(lb_id, principal, action="delete", expect_revision=expect) as ctx:
        policy = _policy(ctx, policy_id)
        listener = policy.listener
        listener.l7policies.remove(policy)
        for i, p in enumerate(sorted(listener.l7policies, key=lambda p: p.position), start=1):
            p.position = i
        ctx.resource = ("l7policy", policy_id)
    return written(204, ctx.revision)


@router.get("/l7policies/{policy_id}/rules")
def list_l7rules(
    policy_id: str, request: Request, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    with state.db.read() as session:
        get_visible(session, L7Policy, policy_id, principal)
        query = select(L7Rule).where(L7Rule.l7policy_id == policy_id)
        return list_collection(session, L7Rule, principal, request, query, views.l7rule, "rules")


@router.post("/l7policies/{policy_id}/rules", status_code=201)
def create_l7rule(
    policy_id: str,
    body: L7RuleCreateBody,
    state: State,
    principal: CurrentPrincipal,
    expect: IfMatch,
) -> Response:
    lb_id = lb_id_for(state, principal, L7Policy, policy_id)
    spec = body.rule
    with state.writer.change(lb_id, principal, action="create", expect_revision=expect) as ctx:
        policy = _policy(ctx, policy_id)
        rule = _new_rule(ctx, spec)
        policy.rules.append(rule)
        ctx.session.flush()
        ctx.pending(rule, "PENDING_CREATE")
        ctx.touched.add("l7rule")
        ctx.resource = ("l7rule", rule.id)
    return render(state, principal, L7Rule, rule.id, views.l7rule, "rule", 201)


def _rule(ctx: WriteContext, policy_id: str, rule_id: str) -> L7Rule:
    for r in _policy(ctx, policy_id).rules:
        if r.id == rule_id:
            return r
    raise NotFound.of("L7 Rule", rule_id)


@router.get("/l7policies/{policy_id}/rules/{rule_id}")
def get_l7rule(
    policy_id: str, rule_id: str, request: Request, state: State, principal: CurrentPrincipal
) -> Response:
    with state.db.read() as session:
        rule = get_visible(session, L7Rule, rule_id, principal)
        if rule.l7policy_id != policy_id:
            raise NotFound.of("L7 Rule", rule_id)
    return render(state, principal, L7Rule, rule_id, views.l7rule, "rule", request=request)


@router.put("/l7policies/{policy_id}/rules/{rule_id}")
def update_l7rule(
    policy_id: str,
    rule_id: str,
    body: L7RuleUpdateBody,
    state: State,
    principal: CurrentPrincipal,
    expect: IfMatch,
) -> Response:
    lb_id = lb_id_for(state, principal, L7Policy, policy_id)
    with state.writer.change(lb_id, principal, action="update", expect_revision=expect) as ctx:
        rule = _rule(ctx, policy_id, rule_id)
        apply_fields(rule, body.rule.model_dump(exclude_unset=True), frozenset({"key"}))
        ctx.pending(rule)
        ctx.resource = ("l7rule", rule_id)
    return render(state, principal, L7Rule, rule_id, views.l7rule, "rule")


@router.delete("/l7policies/{policy_id}/rules/{rule_id}", status_code=204)
def delete_l7rule(
    policy_id: str, rule_id: str, state: State, principal: CurrentPrincipal, expect: IfMatch
) -> Response:
    lb_id = lb_id_for(state, principal, L7Policy, policy_id)
    with state.writer.change(lb_id, principal, action="delete", expect_revision=expect) as ctx:
        rule = _rule(ctx, policy_id, rule_id)
        rule.policy.rules.remove(rule)
        ctx.resource = ("l7rule", rule_id)
    return written(204, ctx.revision)
