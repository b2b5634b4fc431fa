"""The L4 agent's flood-mode events come from the data plane's count of entries, not only from
sampling its state: a flood that starts and ends between two checks (a short burst, or the
agent's side thread starved on a busy node) still gives the operator both events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shoal.agents.l4.agent import L4Agent
from shoal.bench.applycost import offline_agent
from shoal.dataplane.balancer import Balancer, FloodStatus


def status(active: bool, entries: int, exits: int = 0) -> FloodStatus:
    return FloodStatus(mode=[active], effective=[active], rate=[5000 if active else 0],
                       entries=entries, exits=exits)  # fmt: skip


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[L4Agent, list[FloodStatus]]]:
    script: list[FloodStatus] = []
    with offline_agent(Balancer.fake()) as a:
        assert a.lb is not None
        monkeypatch.setattr(a.lb, "flood_status", lambda now=None: script.pop(0))
        monkeypatch.setattr(a, "dataplane_attached", lambda: True)
        a.dataplane_ok = True
        yield a, script


def kinds(a: L4Agent) -> list[str]:
    events, a._pending_events = a._pending_events, []
    return [e["kind"] for e in events]


def test_a_flood_seen_while_on_gives_entered_then_exited(agent):
    a, script = agent
    script += [status(False, 0), status(True, 1), status(True, 1), status(False, 1, 1)]
    for _ in range(4):
        a.watch()
    assert kinds(a) == ["flood_mode_entered", "flood_mode_exited"]


def test_a_flood_between_two_checks_still_gives_both_events(agent):
    a, script = agent
    script += [status(False, 3), status(False, 4, 4), status(False, 4, 4)]
    for _ in range(3):
        a.watch()
    assert kinds(a) == ["flood_mode_entered", "flood_mode_exited"]


def test_floods_before_the_agent_started_are_not_reported_again(agent):
    a, script = agent
    script += [status(False, 7, 7), status(False, 7, 7)]
    a.watch()
    a.watch()
    assert kinds(a) == []
