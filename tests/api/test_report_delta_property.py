"""Delta reports leave the controller with exactly what whole reports would: random changes
to a node's table digests and errors, reports lost before or after the controller stored
them, controller restarts (a new app on the same database) and agent restarts (nothing
acknowledged) are played against a real controller; after every report that got through,
the node's stored digests and error rows must equal the agent's whole tables."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from shoal.agents.api import AgentApi, ControllerUnavailableError
from shoal.agents.report_delta import ReportBody, ReportTracker
from shoal.controller.app import create_app
from shoal.controller.db.engine import Database
from shoal.controller.db.models import Node, NodeLbDigest, NodeLbError

from .conftest import make_settings
from .helpers import ADMIN_SECRET, Api

LBS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(6)]
LB = st.sampled_from(LBS)
OPS = st.one_of(
    st.tuples(st.just("digest"), LB, st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("undigest"), LB),
    st.tuples(st.just("error"), LB, st.integers(1, 3)),
    st.tuples(st.just("unerror"), LB),
    st.tuples(st.just("report")),
    st.tuples(st.just("lost_before")),  # the request never reached the controller
    st.tuples(st.just("lost_after")),  # stored, but the answer was lost
    st.tuples(st.just("controller_restart")),
    st.tuples(st.just("agent_restart")),
    st.tuples(st.just("old_agent")),  # one whole, unnumbered report (an older agent)
)


class World:
    def __init__(self, stack: contextlib.ExitStack, tmp: Path) -> None:
        self.url = f"sqlite:///{tmp / 'controller.db'}"
        self.tmp, self.stack, self.restarts = tmp, stack, 0
        self.db = Database(self.url)
        stack.callback(self.db.dispose)
        self.start_controller()
        admin = Api(self.client, ADMIN_SECRET)
        body = {"enrollment": {"name": "l4-r", "role": "l4"}}
        self.credential = admin.ok("POST", "/v2/shoal/enrollments", body, expect=201)["enrollment"][
            "credential"
        ]
        self.api = self.new_api()
        self.node_id = self.api.register_node()
        self.tracker = ReportTracker()
        self.told = False  # send_read: the tracker is told what changed (touch), not comparing
        self.digests: dict[str, Any] = {}
        self.errors: dict[str, dict[str, Any]] = {}

    def start_controller(self) -> None:
        self.restarts += 1
        app = create_app(make_settings(self.url, self.tmp / f"c{self.restarts}"))
        self.client = self.stack.enter_context(TestClient(app, base_url="https://c"))

    def new_api(self) -> _Api:
        api = _Api("https://c", self.credential)
        api.close()
        self.client.headers["X-Auth-Token"] = self.credential
        api._clients = [self.client]
        return api

    def send(self, lost: str = "") -> None:
        def post(tables: ReportBody) -> None:
            if lost == "before":
                raise ControllerUnavailableError("lost on the way")
            self.api.report(
                self.node_id,
                0,
                tables.errors,
                tables.digests,
                {},
                numbering=tables.fields(),
            )
            if lost == "after":
                raise ControllerUnavailableError("answer lost")

        errors = list(self.errors.values())
        with contextlib.suppress(ControllerUnavailableError):
            if self.told:
                self.tracker.send_read(self.read, post)
            else:
                self.tracker.send(dict(self.digests), errors, post)

    def read(self, lb_ids: set[str] | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """send_read's reader, held to its contract: the digests asked for and those of
        the load balancers with errors, no others."""
        errors = list(self.errors.values())
        if lb_ids is None:
            return dict(self.digests), errors
        wanted = lb_ids | {e["load_balancer_id"] for e in errors}
        return {k: v for k, v in self.digests.items() if k in wanted}, errors

    def set_digest(self, lb_id: str, digest: dict[str, str] | None) -> None:
        if digest is None:
            self.digests.pop(lb_id, None)
        else:
            self.digests[lb_id] = digest
        self.tracker.touch([lb_id])

    def stored(self) -> tuple[dict[str, Any], list[tuple[str, int, str]]]:
        with self.db.read() as session:
            node = session.get(Node, self.node_id)
            assert node is not None
            rows = session.scalars(select(NodeLbError).where(NodeLbError.node_id == node.id))
            errors = sorted((e.load_balancer_id, e.revision, e.reason) for e in rows)
            digests = session.execute(
                select(NodeLbDigest.load_balancer_id, NodeLbDigest.digests).where(
                    NodeLbDigest.node_id == node.id
                )
            )
            return dict(digests.all()), errors

    def send_unnumbered(self) -> None:
        """What an agent from before delta reports sends: whole, without a number."""
        self.api.report(self.node_id, 0, list(self.errors.values()), dict(self.digests), {})

    def whole(self) -> tuple[dict[str, Any], list[tuple[str, int, str]]]:
        errors = sorted(
            (e["load_balancer_id"], e["revision"], e["reason"]) for e in self.errors.values()
        )
        return self.digests, errors


class _Api(AgentApi):
    def register_node(self) -> str:
        r = self._call("POST", "/v2/shoal/nodes", json={"name": "l4-r", "role": "l4"})
        return str(r.json()["node"]["id"])


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        yield World(stack, Path(tmp))


@settings(
    max_examples=int(os.environ.get("SHOAL_REPORT_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(OPS, min_size=1, max_size=25), told=st.booleans())
def test_delta_reports_store_what_a_whole_report_would(
    world: World, ops: list[Any], told: bool
) -> None:
    """told: the agent's way (send_read, touch) rather than comparing whole tables."""
    world.told, world.tracker = told, ReportTracker()
    world.send()  # whole: the controller holds this world's tables, whatever ran before
    for op in ops:
        kind = op[0]
        if kind == "digest":
            world.set_digest(op[1], {"tcp://10.0.0.1:80": op[2]})
        elif kind == "undigest":
            world.set_digest(op[1], None)
        elif kind == "error":
            world.errors[op[1]] = {"load_balancer_id": op[1], "revision": op[2], "reason": "full"}
        elif kind == "unerror":
            world.errors.pop(op[1], None)
        elif kind == "report":
            world.send()
            assert world.stored() == world.whole()
        elif kind == "lost_before":
            world.send("before")
        elif kind == "lost_after":
            world.send("after")
            assert world.stored() == world.whole()
        elif kind == "controller_restart":
            world.start_controller()
            world.api = world.new_api()
        elif kind == "agent_restart":
            world.tracker = ReportTracker()
        elif kind == "old_agent":
            world.send_unnumbered()
            assert world.stored() == world.whole()
    world.send()
    assert world.stored() == world.whole()
