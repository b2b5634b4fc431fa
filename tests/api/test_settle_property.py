"""Settling a load balancer's children gives the same rows whichever way it runs: as
objects (a writer, which answers from the tree in hand) or as one UPDATE per table (a node
report or the tick, with no tree loaded). Random child statuses, both outcomes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.controller import app as app_module
from shoal.controller.db.models import (
    HealthMonitor,
    L7Policy,
    L7Rule,
    Listener,
    LoadBalancer,
    Member,
    Pool,
)
from shoal.controller.services import status
from shoal.controller.services.writes import load_tree

from .helpers import Api

CHILDREN = (Listener, Pool, Member, HealthMonitor, L7Policy, L7Rule)
STATUSES = ("ACTIVE", "PENDING_CREATE", "PENDING_UPDATE", "PENDING_DELETE", "ERROR")


def _tree(alice: Api) -> str:
    """An L7 load balancer with a row of every child kind: two listeners, a pool with two
    members and a monitor, a policy with two rules."""
    lb = alice.lb()
    li = alice.listener(lb["id"], 80, "HTTP")
    alice.listener(lb["id"], 81, "HTTP")
    pool = alice.pool(li["id"], "HTTP", "ROUND_ROBIN")
    alice.member(pool["id"], "10.1.0.1")
    alice.member(pool["id"], "10.1.0.2")
    alice.monitor(pool["id"], "HTTP")
    body = {
        "l7policy": {
            "listener_id": li["id"],
            "action": "REJECT",
            "rules": [
                {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/a"},
                {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/b"},
            ],
        }
    }
    alice.ok("POST", "/v2/lbaas/l7policies", body, expect=201)
    return str(lb["id"])


def _rows(session: Session, lb_id: str) -> list[Any]:
    """Every child row of the load balancer, in a fixed order."""
    lb = load_tree(session, lb_id)
    assert lb is not None
    return sorted(status._children(lb), key=lambda r: (type(r).__name__, r.id))


def _settled(
    client: TestClient, lb_id: str, given_statuses: list[str], target: str, in_hand: bool
) -> list[tuple[str, str, bool]]:
    engine = client.app.state.shoal.db.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        rows = _rows(session, lb_id)
        stamps = {r.id: r.updated_at for r in rows}
        for row, value in zip(rows, given_statuses, strict=True):
            row.provisioning_status = value
        session.flush()
        session.expunge_all()  # the bulk path must find nothing loaded
        if in_hand:
            tree = load_tree(session, lb_id)
            assert tree is not None
            lb = tree
        else:
            lb = session.scalars(select(LoadBalancer).where(LoadBalancer.id == lb_id)).one()
        status._settle(session, lb, target, None, in_hand)
        session.flush()
        session.expunge_all()
        after = [
            (type(r).__name__, r.provisioning_status, r.updated_at != stamps[r.id])
            for r in _rows(session, lb_id)
        ]
        session.rollback()
    return after


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    given_statuses=st.lists(st.sampled_from(STATUSES), min_size=9, max_size=9),
    target=st.sampled_from(("ACTIVE", "ERROR")),
)
def test_objects_and_statements_settle_the_same(
    alice: Api,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    given_statuses: list[str],
    target: str,
) -> None:
    # No background tick: it settles too, and on SQLite its writes would contend with ours.
    monkeypatch.setattr(app_module, "background_tick", lambda state: None)
    lb_id = _tree_once(alice)
    objects = _settled(client, lb_id, given_statuses, target, in_hand=True)
    statements = _settled(client, lb_id, given_statuses, target, in_hand=False)
    assert objects == statements
    kinds = {kind for kind, _, _ in objects}
    assert kinds == {m.__name__ for m in CHILDREN}  # every kind took part
    for (kind, value, stamped), before in zip(objects, given_statuses, strict=True):
        if target == "ACTIVE":  # the rule itself
            assert value == "ACTIVE", kind
        else:
            assert value == (target if before in status.PENDING else before), kind
        assert stamped == (value != before), kind  # updated_at moves with the status only


def _tree_once(alice: Api) -> str:
    """One tree per app (the fixture's database), reused by every example."""
    state = alice.client.app.state  # type: ignore[attr-defined]
    if not hasattr(state, "settle_tree"):
        state.settle_tree = _tree(alice)
    return str(state.settle_tree)
