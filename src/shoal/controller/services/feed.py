"""The change log agents follow: every write records which load balancers it changed, at a
position that only grows and that commits in order.

Positions are the ids of `changes` rows. Writers do not insert them as they go: `record()`
notes what changed, and the rows are inserted at the very end of the transaction, under one
lock (PostgreSQL: an advisory transaction lock; SQLite writers are serialised already). So a
transaction that holds a position has taken its last lock, nothing waits behind it but its
commit, and positions become visible in order: a reader that sees position N sees every
position below it, and an agent that moved to N can never miss a change below N.

Rows that must point at their own change (a load balancer's `revision_seq`, a placement's
`ready_seq`) hold PENDING_POSITION until then: "later than anything a node applied".

After the commit, every waiter of this process is woken (`subscribe`); other controller
processes hear of it through PostgreSQL's NOTIFY on the `shoal_feed` channel, sent in the
same transaction (delivered at its commit), or by polling the head (SQLite, or a lost
listening connection)."""

from __future__ import annotations

import contextlib
import hashlib
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Select, delete, event, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from shoal.controller.db.models import Change, FeedMark

__all__ = [
    "CHANNEL",
    "PENDING_POSITION",
    "Pending",
    "bounds",
    "bounds_query",
    "compact",
    "head",
    "note_live_nodes",
    "record",
    "subscribe",
]

CHANNEL = "shoal_feed"
PENDING_POSITION = 2**62
_LOCK_KEY = 7366  # pg_advisory_xact_lock key of the feed (placement's is 7365)


@dataclass
class Pending:
    """What one transaction changed; position is set at its commit."""

    entries: list[tuple[str, str | None]] = field(default_factory=list)  # (kind, lb id)
    stamps: list[tuple[Any, str, str | None]] = field(default_factory=list)
    position: int = 0
    positions: dict[str | None, int] = field(default_factory=dict)  # lb id -> its position


# Keyed by the connection pool: an engine and its execution_options() copies share it.
_subscribers: weakref.WeakKeyDictionary[Pool, list[Callable[[int], None]]] = (
    weakref.WeakKeyDictionary()
)


def subscribe(engine: Engine, callback: Callable[[int], None]) -> None:
    """callback(position) after each commit that recorded changes on this engine."""
    _subscribers.setdefault(engine.pool, []).append(callback)


def record(
    session: Session,
    kind: str,
    lb_ids: Iterable[str | None] = (None,),
    stamp: Iterable[tuple[Any, str, str | None]] = (),
) -> Pending:
    """Notes that these load balancers changed (None: something that concerns every load
    balancer, such as a node's state or the set of live nodes: agents then take a
    snapshot). stamp: (row, attribute, lb id) set to that load balancer's position at
    commit (PENDING_POSITION until then)."""
    pending: Pending = session.info.setdefault("shoal_feed", Pending())
    for lb_id in lb_ids:
        pending.entries.append((kind, lb_id))
    for row, attr, lb_id in stamp:
        setattr(row, attr, PENDING_POSITION)
        pending.stamps.append((row, attr, lb_id))
    return pending


@event.listens_for(Session, "before_commit")
def _write(session: Session) -> None:
    pending: Pending | None = session.info.pop("shoal_feed", None)
    if pending is None or not pending.entries:
        return
    session.flush()  # every other lock this transaction takes, it takes now
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    seen: dict[str | None, str] = {}
    for kind, lb_id in pending.entries:  # one row per load balancer, in first-noted order
        seen.setdefault(lb_id, kind)
    rows = [Change(load_balancer_id=lb_id, kind=kind) for lb_id, kind in seen.items()]
    session.add_all(rows)
    session.flush()
    pending.positions = {row.load_balancer_id: row.id for row in rows}
    pending.position = max(row.id for row in rows)
    for row, attr, lb_id in pending.stamps:
        setattr(row, attr, pending.positions.get(lb_id, pending.position))
    if postgres:
        session.execute(
            text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": str(pending.position)}
        )
    session.flush()
    session.info["shoal_feed_committing"] = pending


@event.listens_for(Session, "after_commit")
def _wake(session: Session) -> None:
    pending: Pending | None = session.info.pop("shoal_feed_committing", None)
    if pending is None:
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    for callback in _subscribers.get(engine.pool, []):
        callback(pending.position)


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop("shoal_feed", None)
    session.info.pop("shoal_feed_committing", None)


def note_live_nodes(session: Session, node_ids: Iterable[str]) -> bool:
    """Records a change for every load balancer when the set of live nodes differs from
    the one last recorded (health-check duties move, L7 nodes stop or start taking flows).
    Several controllers may look at once: the row lock lets one record it. True when it
    did."""
    digest = hashlib.sha256(",".join(sorted(node_ids)).encode()).hexdigest()
    mark = session.get(FeedMark, "live_nodes", with_for_update=True)
    if mark is None:
        # The first mark: two transactions may insert it at once (a node registering, the
        # background tick); the loser's savepoint rolls back and it locks the winner's row.
        with contextlib.suppress(IntegrityError), session.begin_nested():
            session.add(FeedMark(name="live_nodes", value=""))
            session.flush()
        mark = session.get(FeedMark, "live_nodes", with_for_update=True, populate_existing=True)
        assert mark is not None
    if mark.value == digest:
        return False
    mark.value = digest
    record(session, "node")
    return True


def head(session: Session) -> int:
    """The newest position (0: none yet)."""
    return session.scalar(select(func.max(Change.id))) or 0


def bounds(session: Session) -> tuple[int, int]:
    """(floor, head) in one statement (0, 0: none yet). The floor is the oldest position
    still kept: a position below floor - 1 has lost changes to compaction, and its agent
    needs a snapshot."""
    low, high = session.execute(bounds_query()).one()
    return low or 0, high or 0


def bounds_query() -> Select[int | None, int | None]:
    # Two scalar subqueries, not min() and max() in one select: SQLite answers a lone
    # min() or max() from the primary key's end, but scans the table for both together
    # (tests/api/test_query_plans.py).
    return select(
        select(func.min(Change.id)).scalar_subquery(),
        select(func.max(Change.id)).scalar_subquery(),
    )


def compact(session: Session, keep: int) -> int:
    """Deletes all but the newest `keep` changes; returns how many went."""
    newest = head(session)
    if newest <= keep:
        return 0
    result = session.execute(delete(Change).where(Change.id <= newest - keep))
    return int(getattr(result, "rowcount", 0) or 0)
