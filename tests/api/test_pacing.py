"""Feed pacing (shoal.controller.services.pacing): under churn a node gets at most one answer
with changes per feed_min_interval, holding every change made meanwhile; an idle node's
answer is not held; only a node's own answers count."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from shoal.controller.app import create_app
from shoal.controller.services.pacing import FeedPacer

from .conftest import make_settings
from .helpers import Api, Fleet
from .test_feed import catch_up, get_feed, register

INTERVAL = 0.6


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 1)), max_size=30))
def test_the_delay_is_what_is_left_of_the_interval_since_that_nodes_last_answer(
    steps: list[tuple[str, float]],
) -> None:
    clock = Clock()
    pacer = FeedPacer(0.25, clock)
    last: dict[str, float] = {}
    for node, advance in steps:
        clock.now += advance
        expected = max(0.0, last[node] + 0.25 - clock.now) if node in last else 0.0
        assert pacer.delay(node) == pytest.approx(expected)
        assert 0.0 <= pacer.delay(node) <= 0.25
        pacer.answered(node)
        last[node] = clock.now
    assert len(pacer) == len(last)


def test_no_interval_never_delays_and_a_deleted_node_starts_unpaced() -> None:
    clock = Clock()
    off = FeedPacer(0.0, clock)
    off.answered("a")
    assert off.delay("a") == 0.0
    on = FeedPacer(1.0, clock)
    on.answered("a")
    assert on.delay("a") == 1.0
    on.forget("a")
    assert on.delay("a") == 0.0 and len(on) == 0


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Any:
    settings = make_settings(database_url, tmp_path, feed_min_interval=INTERVAL)
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        yield c


def _rename(alice: Api, lb_id: str, name: str) -> None:
    alice.ok("PUT", f"/v2/lbaas/loadbalancers/{lb_id}", {"loadbalancer": {"name": name}})


def test_changes_during_the_interval_come_in_one_answer(
    client: TestClient, alice: Api, agent: Fleet
) -> None:
    stacks = [alice.l4_stack(members=1) for _ in range(3)]
    node = register(agent)
    asked_snapshot = time.monotonic()  # the snapshot's answer is stamped after this
    snap = catch_up(agent, node, 0)
    _rename(alice, stacks[0]["lb"]["id"], "first")
    got: dict[str, Any] = {}

    def poll() -> None:
        got.update(get_feed(agent, node, snap["seq"], timeout=20))
        got["at"] = time.monotonic()

    t = threading.Thread(target=poll)
    t.start()
    _rename(alice, stacks[1]["lb"]["id"], "second")  # while the answer is held
    _rename(alice, stacks[2]["lb"]["id"], "third")
    t.join(30)
    # Held until the interval since the snapshot's answer passed, then one answer for all.
    assert got["at"] - asked_snapshot >= INTERVAL
    assert {lb["id"] for lb in got["load_balancers"]} == {s["lb"]["id"] for s in stacks}
    pacer = client.app.state.shoal.pacer  # type: ignore[attr-defined]
    assert 0 < pacer.delay(node) <= INTERVAL  # the answer itself started a new interval


def test_another_node_neither_sees_nor_moves_a_nodes_pacing(
    client: TestClient, agent: Fleet
) -> None:
    a = register(agent, "l4-a")
    b = register(agent, "l4-b")
    pacer = client.app.state.shoal.pacer  # type: ignore[attr-defined]
    r = agent.by_id[a].request("GET", f"/v2/shoal/nodes/{b}/feed", position=0)
    assert r.status_code == 403
    r = agent.by_id[a].request("GET", "/v2/shoal/nodes/not-a-node/feed", position=0)
    assert r.status_code in (403, 404)
    assert len(pacer) == 0 and pacer.delay(b) == 0.0
    catch_up(agent, b, 0)
    assert len(pacer) == 1 and pacer.delay(a) == 0.0 and pacer.delay(b) > 0
