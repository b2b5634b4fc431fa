"""The L7 agent's reports: errors as deltas against the report the controller acknowledged
(a whole one after a refused base), HAProxy's per-LB counters at most every traffic_every
seconds, so a report after one change does not carry every load balancer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from shoal.agents.api import AgentApi, ControllerRefusedError
from shoal.agents.l7.agent import L7Agent, L7AgentConfig


class Recorder(AgentApi):
    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", "unused")
        self.sent: list[dict[str, Any]] = []
        self.refuse_next = False

    def report(  # type: ignore[override]
        self, node_id: str, seq: int, errors: Any, digests: Any, counters: Any, **kw: Any
    ) -> None:
        if self.refuse_next:
            self.refuse_next = False
            raise ControllerRefusedError(409, "send a whole report")
        self.sent.append({"errors": errors, "counters": counters, **kw["numbering"]})


class Stats:
    def __init__(self) -> None:
        self.asked = 0

    def stats(self) -> list[dict[str, str]]:
        self.asked += 1
        return []


def error(lb_id: str) -> dict[str, Any]:
    return {"load_balancer_id": lb_id, "revision": 1, "reason": "HAProxy refused"}


def test_l7_reports_are_deltas_and_traffic_is_periodic(tmp_path: Path) -> None:
    cfg = L7AgentConfig(
        controller="http://127.0.0.1:9",
        token="unused",
        name="l7r",
        data_address="127.0.0.1",
        run_dir=tmp_path / "run",
        state_dir=tmp_path / "state",
    )
    api = Recorder()
    agent = L7Agent(cfg, api)
    stats = Stats()
    agent.proxy = stats  # type: ignore[assignment]
    agent.node_id = "n1"
    agent.errors = [error(f"lb{i}") for i in range(50)]
    agent.report()
    agent.errors = [*agent.errors[1:], error("lb-new")]
    agent.report()
    agent.report()
    whole, delta, quiet = api.sent
    assert "base" not in whole and len(whole["errors"]) == 50
    assert "load_balancers" in whole["counters"] and stats.asked == 1
    assert delta["base"] == whole["report"] and delta["removed"] == ["lb0"]
    assert delta["errors"] == [error("lb-new")]
    assert quiet["base"] == delta["report"] and quiet["errors"] == [] and "removed" not in quiet
    # Traffic is not in the reports between; HAProxy was not asked for it either.
    assert "load_balancers" not in delta["counters"] and "load_balancers" not in quiet["counters"]
    assert stats.asked == 1 and "haproxy" in quiet["counters"]
    # A refused base (another controller, a restore): the same report again, whole.
    api.refuse_next = True
    agent.report()
    assert "base" not in api.sent[-1] and len(api.sent[-1]["errors"]) == 50
    # traffic_every later: the per-LB counters again.
    agent._traffic_at = time.monotonic() - agent.traffic_every
    agent.report()
    assert "load_balancers" in api.sent[-1]["counters"] and stats.asked == 2
