"""What every agent's loop exports and logs: its feed position, lag and apply durations in a
real registry, and one log line per applied revision carrying the API request's id, in
JSON when asked."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shoal.agents.api import AgentApi, ControllerUnavailableError
from shoal.agents.loop import AgentLoop, _touched_in_order
from shoal.agents.metrics import FeedMetrics
from shoal.controller.requestid import new_request_id
from shoal.logs import JsonFormatter
from shoal.wire.feed import DesiredState, Feed


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lag_is_zero_in_sync_and_grows_while_behind() -> None:
    from prometheus_client import CollectorRegistry

    clock = Clock()
    feed = FeedMetrics(CollectorRegistry(), clock)
    clock.now += 3
    assert feed.lag_seconds() == 3  # nothing applied since the start
    feed.in_sync(7)
    clock.now += 60
    assert feed.lag_seconds() == 0  # waiting in a long poll: in sync
    feed.behind()
    clock.now += 2
    feed.behind()  # still the first moment it fell behind
    clock.now += 1
    assert feed.lag_seconds() == 3
    with feed.applying():
        clock.now += 0.25
    feed.in_sync(8)
    assert feed.lag_seconds() == 0 and feed.position._value.get() == 8


class ScriptedApi:
    """Answers the loop's polls from a list, then stops the agent."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.agent: Agent | None = None
        self.reports: list[int] = []

    def feed(self, node_id: str, position: int, wait: float = 0) -> Feed:
        if not self.answers:
            assert self.agent is not None
            self.agent._stop.set()
            return Feed(seq=position, changed=False)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return Feed.model_validate(answer)


class Agent(AgentLoop):
    role = "test"

    def __init__(self, api: ScriptedApi, tmp: Path, refuse: set[str]) -> None:
        super().__init__(cast(AgentApi, api), tmp / "state.json", 0, logging.getLogger("t.agent"))
        self.refuse = refuse

    def register(self) -> None:
        self.node_id = "n1"

    def apply(self, desired: DesiredState) -> None:
        self.errors = [
            {"load_balancer_id": lb.id, "revision": lb.revision, "reason": "no room"}
            for lb in desired.load_balancers
            if lb.id in self.refuse
        ]

    def report(self) -> None:
        pass

    def side_tick(self) -> None:
        pass

    def prepare(self) -> None:
        pass


def lbs(seq: int, *entries: tuple[str, int, str | None]) -> dict[str, Any]:
    return {
        "seq": seq,
        "load_balancers": [
            {"id": i, "revision": r, "request_id": rid, "config": {"vip_address": "10.0.0.1"}}
            for i, r, rid in entries
        ],
    }


def test_each_applied_revision_is_logged_once_with_its_request_id(tmp_path: Path) -> None:
    rid1, rid2, rid3 = new_request_id(), new_request_id(), new_request_id()
    api = ScriptedApi(
        [
            lbs(5, ("lb-a", 1, rid1), ("lb-b", 1, rid2)),
            ControllerUnavailableError("controller away"),
            lbs(6, ("lb-a", 1, rid1), ("lb-b", 2, rid3)),
        ]
    )
    agent = Agent(api, tmp_path, refuse={"lb-b"})
    api.agent = agent
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter({"node": "n1"}))
    logger = logging.getLogger("t.agent")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        agent.run()
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    applied = [x for x in lines if x["message"].startswith(("applied", "refused"))]
    assert [(x["load_balancer_id"], x["revision"], x["request_id"]) for x in applied] == [
        ("lb-a", 1, rid1),
        ("lb-b", 1, rid2),  # refused
        ("lb-b", 2, rid3),  # refused again: a new revision, logged again
    ]
    assert applied[1]["level"] == "warning" and "no room" in applied[1]["message"]
    assert all(x["node"] == "n1" and x["ts"].endswith("+00:00") for x in lines)
    assert rid1 in applied[0]["message"]  # the text format shows it too
    text = generate_latest(agent.registry).decode()
    found = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    assert found["shoal_agent_feed_position"].value == 6
    assert found["shoal_agent_apply_duration_seconds_count"].value == 2
    assert found["shoal_agent_feed_lag_seconds"].value == 0


def test_json_lines_carry_extra_fields_and_exceptions() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("a",), None)
    record.request_id = "req-1"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    doc = json.loads(JsonFormatter().format(record))
    assert doc["message"] == "failed a" and doc["request_id"] == "req-1"
    assert doc["level"] == "error" and "ValueError: boom" in doc["exception"]


def test_a_large_first_state_is_one_line_then_changes_one_each(tmp_path: Path) -> None:
    many = [(f"lb-{i}", 1, new_request_id()) for i in range(60)]
    changed = (many[7][0], 2, new_request_id())
    api = ScriptedApi([lbs(1, *many), lbs(2, *many[:7], changed, *many[8:])])
    agent = Agent(api, tmp_path, refuse=set())
    api.agent = agent
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("t.agent")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        agent.run()
    finally:
        logger.removeHandler(handler)
    messages = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert messages == [
        "applied 60 load balancer(s) at seq 1 (0 refused)",
        f"applied load balancer lb-7 revision 2 (request {changed[2]})",
    ]


IDS = st.sampled_from([f"lb-{i}" for i in range(8)])
ANSWERS = st.lists(
    st.tuples(st.booleans(), st.lists(IDS, max_size=5), st.lists(IDS, max_size=3)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(answers=ANSWERS)
def test_the_touched_load_balancers_are_logged_in_the_states_order(
    answers: list[tuple[bool, list[str], list[str]]],
) -> None:
    """The log reads a delta's load balancers from the state's tail (merge() moves what an
    answer carries last): the same list, in the same order, as a pass over every one."""
    state = DesiredState()
    for seq, (snapshot, carried, deleted) in enumerate(answers, start=1):
        feed = Feed.model_validate(
            {
                "seq": seq,
                "snapshot": snapshot,
                "load_balancers": [
                    {"id": i, "revision": seq, "config": {"vip_address": "10.0.0.1"}}
                    for i in carried
                ],
                "deleted": [] if snapshot else deleted,
            }
        )
        touched = state.merge(feed)
        expected = [lb for lb_id, lb in state.lbs.items() if lb_id in touched]
        assert _touched_in_order(state, touched) == expected
