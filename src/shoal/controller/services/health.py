"""Member health, decided once here from the agents' check results and published as a change,
so every L4 node builds the same table. A member goes UP after max_retries consecutive
successes and DOWN after max_retries_down consecutive failures (Octavia's meaning)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.controller.db.models import Event, Member, Node, Placement, utcnow
from shoal.controller.services import feed
from shoal.controller.settings import ControllerSettings

__all__ = ["CheckResult", "record_node_result", "record_result"]


@dataclass(frozen=True)
class CheckResult:
    member_id: str
    ok: bool
    detail: str = ""


def next_state(health: str, streak: int, ok: bool, rise: int, fall: int) -> tuple[str, int]:
    """The member state machine: (health, streak) after one result. streak counts consecutive
    successes (positive) or failures (negative)."""
    streak = (streak + 1 if streak > 0 else 1) if ok else (streak - 1 if streak < 0 else -1)
    if ok and streak >= rise:
        return "UP", streak
    if not ok and -streak >= fall:
        return "DOWN", streak
    return health, streak


def record_result(
    session: Session, member: Member, result: CheckResult, *, decided: bool = False
) -> bool:
    """Applies one result; True when the member's health changed (a change was published).
    decided: the checker already applied rise/fall (HAProxy on an L7 node)."""
    hm = member.pool.healthmonitor
    if hm is None:
        return False
    if decided:
        health, streak = ("UP", 1) if result.ok else ("DOWN", -1)
    else:
        health, streak = next_state(
            member.health, member.health_streak, result.ok, hm.max_retries, hm.max_retries_down
        )
    member.health_streak = streak
    member.health_detail = result.detail or None
    if health == member.health:
        return False
    member.health = health
    member.health_changed_at = utcnow()
    lb_id = member.pool.load_balancer_id
    feed.record(session, "health", [lb_id])
    session.add(
        Event(
            project_id=member.project_id,
            load_balancer_id=lb_id,
            kind=f"member_{health.lower()}",
            severity="warning" if health == "DOWN" else "info",
            message=f"member {member.id} ({member.address}:{member.protocol_port}) "
            f"is {health}" + (f": {result.detail}" if result.detail else ""),
            detail={"member_id": member.id},
        )
    )
    return True


def record_node_result(
    session: Session, node_id: str, ok: bool, detail: str, settings: ControllerSettings
) -> bool:
    """An L4 node's check of an L7 node's monitor endpoint; True when the L7 node's health
    changed (the L4 tier then stops or resumes sending it new flows)."""
    node = session.get(Node, node_id)
    if node is None or node.role != "l7":
        return False
    health, streak = next_state(
        node.health, node.health_streak, ok, settings.l7_check_rise, settings.l7_check_fall
    )
    node.health_streak = streak
    if health == node.health:
        return False
    node.health = health
    # The L4 tier sends the load balancers placed on it new flows, or stops.
    feed.record(
        session,
        "health",
        session.scalars(select(Placement.load_balancer_id).where(Placement.node_id == node.id)),
    )
    session.add(
        Event(
            node_id=node.id,
            kind=f"node_{health.lower()}",
            severity="warning" if health == "DOWN" else "info",
            message=f"L7 node {node.name} is {health}" + (f": {detail}" if detail else ""),
        )
    )
    return True
