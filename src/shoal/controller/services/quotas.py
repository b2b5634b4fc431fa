"""Per-project quotas, checked inside the write transaction that would exceed them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shoal.controller.db.models import (
    HealthMonitor,
    L7Policy,
    L7Rule,
    Listener,
    LoadBalancer,
    Member,
    Pool,
    Quota,
)
from shoal.controller.errors import QuotaExceeded
from shoal.controller.settings import QuotaDefaults

__all__ = ["KINDS", "check", "limits", "usage"]

KINDS: dict[str, Any] = {
    "load_balancer": LoadBalancer,
    "listener": Listener,
    "pool": Pool,
    "member": Member,
    "healthmonitor": HealthMonitor,
    "l7policy": L7Policy,
    "l7rule": L7Rule,
}


def limits(session: Session, project_id: str, defaults: QuotaDefaults) -> dict[str, int]:
    row = session.get(Quota, project_id)
    out = {}
    for kind in KINDS:
        own = getattr(row, kind) if row is not None else None
        out[kind] = own if own is not None else getattr(defaults, kind)
    return out


def usage(session: Session, project_id: str, kinds: Iterable[str] = KINDS) -> dict[str, int]:
    return {
        kind: session.scalar(
            select(func.count())
            .select_from(KINDS[kind])
            .where(KINDS[kind].project_id == project_id)
        )
        or 0
        for kind in kinds
    }


def check(session: Session, project_id: str, kinds: Iterable[str], defaults: QuotaDefaults) -> None:
    """Raises QuotaExceeded (403) when the project now holds more than its limit of a kind."""
    kinds = list(kinds)
    if not kinds:
        return
    limit = limits(session, project_id, defaults)
    relevant = [k for k in kinds if limit[k] >= 0]
    used = usage(session, project_id, relevant)
    over = [k for k in relevant if used[k] > limit[k]]
    if over:
        detail = ", ".join(f"{k} ({limit[k]})" for k in over)
        raise QuotaExceeded(f"Quota has been met for resources: {detail} in project {project_id}")
