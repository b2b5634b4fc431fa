"""The agent's side of the feed: its saved position (a restart resumes with a delta), and
failover between controllers (a dead one or a 5xx moves on; a refusal does not)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoal.agents.api import AgentApi, ControllerRefusedError, ControllerUnavailableError
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.agents.position import FeedStore
from shoal.bench.applycost import load_balancer
from shoal.dataplane.balancer import Balancer
from shoal.wire.feed import DesiredState, Feed


def _feed(
    seq: int, lbs: list[dict[str, Any]], snapshot: bool, deleted: list[str] | None = None
) -> Feed:
    return Feed.model_validate(
        {
            "seq": seq,
            "snapshot": snapshot,
            "settings": {"seed": "s"},
            "load_balancers": lbs,
            "deleted": deleted or [],
        }
    )


def test_the_store_keeps_what_was_folded_and_nothing_else(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = FeedStore(tmp_path / "agent" / "n.feed.db")
    finally:
        os.umask(old)
    state = DesiredState()
    touched = state.merge(_feed(5, [load_balancer(i, 2) for i in range(3)], snapshot=True))
    store.save(state, touched, snapshot=True)
    touched = state.merge(_feed(7, [], snapshot=False, deleted=["lb-00001"]))
    store.save(state, touched, snapshot=False)
    # The journal's mode is read while a connection holds it open: a
    # connection left to the garbage collector may remove its -shm and -wal
    # between the listing and the stat.
    files = {path.name: path.stat().st_mode & 0o077 for path in (tmp_path / "agent").iterdir()}
    assert files == {"n.feed.db": 0, "n.feed.db-wal": 0, "n.feed.db-shm": 0}
    store.close()
    reopened = FeedStore(tmp_path / "agent" / "n.feed.db")
    again = reopened.load()
    reopened.close()
    assert again.seq == 7 and again.comparable() == state.comparable()
    assert list(again.lbs) == ["lb-00000", "lb-00002"]
    assert (tmp_path / "agent" / "n.feed.db").stat().st_mode & 0o077 == 0


def test_a_store_of_another_schema_means_a_snapshot(tmp_path: Path) -> None:
    store = FeedStore(tmp_path / "n.feed.db")
    state = DesiredState()
    store.save(state, state.merge(_feed(3, [load_balancer(1, 1)], snapshot=True)), True)
    store._db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    assert store.load().seq == -1


class FakeApi:
    def __init__(self, answers: list[Feed]) -> None:
        self.answers = answers
        self.asked: list[tuple[int, float]] = []

    def feed(self, node_id: str, position: int, wait: float = 0) -> Feed:
        self.asked.append((position, wait))
        return self.answers.pop(0)

    def report(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _agent(tmp_path: Path, api: FakeApi) -> L4Agent:
    cfg = L4AgentConfig(
        controller="", token="", name="r", interface="lo", state_dir=tmp_path, poll_wait=7
    )
    agent = L4Agent(cfg, api)  # type: ignore[arg-type]
    agent.lb = Balancer.fake(max_vips=64, max_backends=1024)
    agent.node_id = "node"
    return agent


def test_a_restarted_agent_resumes_from_its_position(tmp_path: Path) -> None:
    lbs = [load_balancer(i, 2) for i in range(3)]
    first = _agent(tmp_path, FakeApi([_feed(4, lbs, snapshot=True)]))
    first.follow()
    assert first.seq == 4
    digests = first.digests
    first.health.close()
    first.store().close()
    changed = json.loads(json.dumps(lbs[1]))
    changed["revision"] = 2
    changed["config"]["pools"][0]["members"][0]["weight"] = 0
    api = FakeApi([_feed(6, [changed], snapshot=False)])
    second = _agent(tmp_path, api)
    second.resume()
    assert second.seq == 4 and set(second.desired.lbs) == {lb["id"] for lb in lbs}
    second.apply(second.desired)
    assert second.digests == digests  # the same tables from what was saved
    second.follow()
    assert api.asked == [(4, 7)]  # a delta since its position, by long poll
    assert second.seq == 6 and second.last_touched == {"lb-00001"}
    assert second.digests["lb-00001"] != digests["lb-00001"]
    second.health.close()


def _client(handler: Any, base: str) -> httpx.Client:
    return httpx.Client(base_url=base, transport=httpx.MockTransport(handler))


def test_failover_moves_on_from_dead_controllers_but_not_from_refusals() -> None:
    calls: list[str] = []

    def dead(request: httpx.Request) -> httpx.Response:
        calls.append(f"dead {request.url.path}")
        raise httpx.ConnectError("refused", request=request)

    def broken(request: httpx.Request) -> httpx.Response:
        calls.append("broken")
        return httpx.Response(503, text="database away")

    def alive(request: httpx.Request) -> httpx.Response:
        calls.append("alive")
        if request.url.path.endswith("/report"):
            return httpx.Response(403, json={"faultstring": "not yours"})
        return httpx.Response(200, json={"seq": 9, "changed": False})

    api = AgentApi(["https://a", "https://b", "https://c"], "t")
    api.close()
    api._clients = [
        _client(dead, "https://a"),
        _client(broken, "https://b"),
        _client(alive, "https://c"),
    ]
    assert api.feed("n", 9).changed is False
    assert calls == ["dead /v2/shoal/nodes/n/feed", "broken", "alive"]
    assert api.url == "https://c"
    calls.clear()
    with pytest.raises(ControllerRefusedError):
        api.report("n", 9, [], {}, {})
    assert calls == ["alive"]  # a refusal is an answer: no other controller is asked
    api._clients = [_client(dead, "https://a"), _client(broken, "https://b")]
    api._current = 0
    with pytest.raises(ControllerUnavailableError):
        api.feed("n", 9)
