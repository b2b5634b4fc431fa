"""membercost measures what it says: a member change with the nodes following, the same
statements whatever the number of load balancers, and a tree it cloned that the API and
the agents' feed take as real (the changed load balancer settles ACTIVE, or it raises)."""

from __future__ import annotations

from shoal.bench.membercost import measure
from shoal.controller import app


def test_a_change_costs_the_same_statements_at_two_sizes() -> None:
    tick = app.background_tick
    small = measure(2, members=2, rounds=3, sqlite=True)
    assert app.background_tick is tick  # the counter's wrapper is gone with it
    large = measure(20, members=2, rounds=3, sqlite=True)
    for step in ("write", "feed", "report"):
        assert small.steps[step]["statements"] == large.steps[step]["statements"], step
        assert small.steps[step]["statements"] > 0  # the counter sees the steps' SQL
    assert small.steps["floor"]["statements"] == 0
    assert large.as_dict()["load_balancers"] == 20 and large.database == "sqlite"
