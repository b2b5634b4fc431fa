"""The controller's lock order on PostgreSQL: load balancer rows, then the placement planner's
lock, then the feed's. A writer locks its load balancer and then places it; the background
round used to take the planner's lock first and then lock every pending load balancer in the
same transaction, and two racing writers got a 500 (PostgreSQL: deadlock detected)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from shoal.controller.app import background_tick, create_app
from shoal.controller.db.models import LoadBalancer
from shoal.controller.services import placement

from .conftest import ADMIN_SECRET, make_settings
from .helpers import Api

WAITING = (
    "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN ('transactionid', 'tuple')"
)


def test_the_background_round_never_waits_for_a_row_while_holding_the_planner(
    database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: no lock order to keep")
    app = create_app(make_settings(database_url, tmp_path))  # no lifespan: no own rounds
    state = app.state.shoal
    admin = Api(TestClient(app, base_url="https://testserver"), ADMIN_SECRET)
    lb = admin.ok("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"name": "l7"}})
    lb_id = lb["loadbalancer"]["id"]
    assert lb["loadbalancer"]["provisioning_status"] != "ACTIVE"  # a row the round locks

    failures: list[BaseException] = []

    def round_() -> None:
        try:
            background_tick(state)
        except BaseException as exc:
            failures.append(exc)

    tick = threading.Thread(target=round_)
    with state.db.write() as writer:  # a writer mid-write: its row, then the planner
        writer.execute(select(LoadBalancer).where(LoadBalancer.id == lb_id).with_for_update())
        tick.start()
        # Until the round waits for this row (not a fixed sleep: on a loaded machine the round
        # might not have got there yet, and the test would pass on the old order too).
        deadline = time.monotonic() + 30
        with state.db.engine.connect() as probe:
            while not probe.execute(text(WAITING)).scalar():
                assert time.monotonic() < deadline, "the round never waited for the row"
                time.sleep(0.05)
        placement._lock(writer)
    tick.join(60)
    assert not tick.is_alive() and failures == [], failures
