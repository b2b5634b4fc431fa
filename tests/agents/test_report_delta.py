"""The agent's side of delta reports (shoal.agents.report_delta): a report after one change
carries that change; whole reports when nothing is acknowledged; a 409 is answered at once
with a whole report, any other failure leaves the acknowledged base alone."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.agents.api import ControllerRefusedError, ControllerUnavailableError
from shoal.agents.report_delta import ReportBody, ReportTracker


def tables(n: int) -> dict[str, Any]:
    return {f"lb{i}": {f"tcp://10.0.0.{i}:80": "d"} for i in range(n)}


def err(lb: str) -> dict[str, Any]:
    return {"load_balancer_id": lb, "revision": 1, "reason": "full"}


def test_after_one_change_only_that_load_balancer_is_sent() -> None:
    t = ReportTracker()
    digests = tables(1000)
    first = t.body(digests, [])
    assert first.base is None and len(first.digests) == 1000
    t.acknowledged(first)
    digests = dict(digests) | {"lb7": {"tcp://10.0.0.7:80": "new"}}
    digests.pop("lb9")
    second = t.body(digests, [err("lb3")])
    assert second.base == first.number and second.number > first.number
    assert second.digests == {"lb7": {"tcp://10.0.0.7:80": "new"}, "lb3": digests["lb3"]}
    assert second.errors == [err("lb3")] and second.removed == ["lb9"]
    t.acknowledged(second)
    third = t.body(digests, [])  # lb3's error went: its digest is sent so it is replaced
    assert third.digests == {"lb3": digests["lb3"]} and third.errors == [] and not third.removed
    assert third.fields() == {"report": third.number, "base": second.number}


def test_reset_makes_the_next_report_whole() -> None:
    t = ReportTracker()
    t.acknowledged(t.body(tables(3), []))
    t.reset()
    body = t.body(tables(3), [])
    assert body.base is None and len(body.digests) == 3 and "base" not in body.fields()


def test_a_refused_base_is_followed_by_a_whole_report() -> None:
    t = ReportTracker()
    t.acknowledged(t.body(tables(5), []))
    sent: list[ReportBody] = []

    def post(body: ReportBody) -> None:
        sent.append(body)
        if body.base is not None:
            raise ControllerRefusedError(409, "send a whole report")

    t.send(tables(5) | {"lb1": {"x": "y"}}, [], post)
    assert [b.base is None for b in sent] == [False, True] and len(sent[1].digests) == 5
    # The whole one is now the base.
    assert t.body(tables(5), []).base == sent[1].number


@pytest.mark.parametrize(
    "exc", [ControllerUnavailableError("lost"), ControllerRefusedError(403, "not yours")]
)
def test_other_failures_keep_the_acknowledged_base(exc: Exception) -> None:
    t = ReportTracker()
    first = t.body(tables(2), [])
    t.acknowledged(first)

    def post(body: ReportBody) -> None:
        raise exc

    with pytest.raises(type(exc)):
        t.send(tables(2) | {"lb0": {"x": "y"}}, [], post)
    again = t.body(tables(2) | {"lb0": {"x": "y"}}, [])
    assert again.base == first.number and list(again.digests) == ["lb0"]
