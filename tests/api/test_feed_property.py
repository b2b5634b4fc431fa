"""The incremental feed and apply reach exactly what a full apply reaches.

Random sequences of creates, member updates, additions and removals, deletions, rollbacks,
agent restarts (from the saved position), controller switches (two controller apps on one
database) and compaction (the agent falls too far behind and gets a snapshot) are played
against real controllers; a real L4 agent (on the in-memory data plane) follows the feed
after each step. Then its folded state, its Maglev table digests and its errors must equal
those of a fresh agent that applies one snapshot."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.agents.api import AgentApi
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.controller.app import create_app
from shoal.controller.db.engine import Database
from shoal.controller.services import feed
from shoal.dataplane.balancer import Balancer
from shoal.wire.feed import DesiredState

from .conftest import make_settings
from .helpers import ADMIN_SECRET, Api

LB = st.integers(0, 3)  # which of the load balancers created so far (modulo)
OPS = st.one_of(
    st.tuples(st.just("create"), st.integers(1, 4)),
    st.tuples(st.just("weight"), LB, st.integers(0, 3), st.integers(0, 5)),
    st.tuples(st.just("add_member"), LB),
    st.tuples(st.just("del_member"), LB),
    st.tuples(st.just("disable"), LB),
    st.tuples(st.just("delete"), LB),
    st.tuples(st.just("rollback"), LB),
    st.tuples(st.just("restart")),
    st.tuples(st.just("switch")),
    st.tuples(st.just("compact")),
    st.tuples(st.just("lag")),  # the agent does not follow after the next step
)


class World:
    """Two controllers on one SQLite database, an admin, and one L4 agent."""

    def __init__(self, stack: contextlib.ExitStack, tmp: Path) -> None:
        url = f"sqlite:///{tmp / 'controller.db'}"
        self.clients = [
            stack.enter_context(
                TestClient(create_app(make_settings(url, tmp / f"c{i}")), base_url=f"https://c{i}")
            )
            for i in range(2)
        ]
        self.db = Database(url)
        stack.callback(self.db.dispose)
        self.admin = Api(self.clients[0], ADMIN_SECRET)
        body = {"enrollment": {"name": "l4-p", "role": "l4"}}
        cred = self.admin.ok("POST", "/v2/shoal/enrollments", body, expect=201)
        self.credential = cred["enrollment"]["credential"]
        self.tmp = tmp
        self.lbs: list[str] = []
        self.addresses = 0
        self.balancer = Balancer.fake(max_vips=64, max_backends=1024)
        self.agent = self.new_agent(self.balancer)
        self.agent.register()
        self.follow()

    def new_agent(self, balancer: Balancer, state_dir: Path | None = None) -> L4Agent:
        cfg = L4AgentConfig(
            controller="",
            token="",
            name="l4-p",
            interface="lo",
            state_dir=state_dir or self.tmp / "agent",
            poll_wait=0,
        )
        api = AgentApi(["https://c0", "https://c1"], self.credential)
        api.close()
        api._clients = [  # the agents' HTTP client, on the in-process controllers
            _client_of(c, self.credential) for c in self.clients
        ]
        agent = L4Agent(cfg, api)
        agent.lb = balancer
        return agent

    def follow(self) -> None:
        """The agent's loop, until it is at the head."""
        for _ in range(20):
            self.agent.follow()
            with self.db.read() as session:
                if self.agent.seq >= feed.head(session):
                    return
        raise AssertionError("the agent did not catch up")

    def member_address(self) -> str:
        self.addresses += 1
        return f"10.1.{self.addresses // 250}.{self.addresses % 250 + 1}"

    def lb_id(self, index: int) -> str | None:
        return self.lbs[index % len(self.lbs)] if self.lbs else None

    def write(self, method: str, path: str, body: Any = None) -> None:
        """A write; 409 (a load balancer still pending: the agent lagged) changes nothing."""
        r = self.admin.request(method, path, body)
        assert r.status_code < 300 or r.status_code == 409, (method, path, r.text)

    def members(self, lb_id: str) -> tuple[str, list[dict[str, Any]]]:
        """The pool and its members ("", [] when a rollback took the pool away)."""
        pools = self.admin.ok("GET", "/v2/lbaas/pools", loadbalancer_id=lb_id)["pools"]
        if not pools:
            return "", []
        members = self.admin.ok("GET", f"/v2/lbaas/pools/{pools[0]['id']}/members")["members"]
        return pools[0]["id"], sorted(members, key=lambda m: m["id"])

    def step(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        lb_id = self.lb_id(op[1]) if len(op) > 1 and kind != "create" else None
        if kind == "create":
            lb = self.admin.lb(flavor_id="l4")
            self.lbs.append(lb["id"])
            self.follow()  # ACTIVE before the children are added
            li = self.admin.listener(lb["id"])
            self.follow()
            pool = self.admin.pool(li["id"])
            self.follow()
            members = [
                {"address": self.member_address(), "protocol_port": 80} for _ in range(op[1])
            ]
            self.write("PUT", f"/v2/lbaas/pools/{pool['id']}/members", {"members": members})
        elif lb_id is None:
            pass
        elif kind == "weight":
            pool_id, members = self.members(lb_id)
            if members:
                m = members[op[2] % len(members)]
                body = {"member": {"weight": op[3]}}
                self.write("PUT", f"/v2/lbaas/pools/{pool_id}/members/{m['id']}", body)
        elif kind == "add_member":
            pool_id, _ = self.members(lb_id)
            if not pool_id:
                return
            body = {"member": {"address": self.member_address(), "protocol_port": 80}}
            self.write("POST", f"/v2/lbaas/pools/{pool_id}/members", body)
        elif kind == "del_member":
            pool_id, members = self.members(lb_id)
            if members:
                self.write("DELETE", f"/v2/lbaas/pools/{pool_id}/members/{members[0]['id']}")
        elif kind == "disable":
            lb = self.admin.get_lb(lb_id)
            body = {"loadbalancer": {"admin_state_up": not lb["admin_state_up"]}}
            self.write("PUT", f"/v2/lbaas/loadbalancers/{lb_id}", body)
        elif kind == "delete":
            self.write("DELETE", f"/v2/lbaas/loadbalancers/{lb_id}?cascade=true")
            self.follow()  # the deletion completes once the node removed it
            if self.admin.request("GET", f"/v2/lbaas/loadbalancers/{lb_id}").status_code == 404:
                self.lbs.remove(lb_id)
        elif kind == "rollback":
            revs = self.admin.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions")
            numbers = [r["number"] for r in revs["revisions"] if not r["deleted"]]
            if len(numbers) > 1:
                target = numbers[len(numbers) // 2]
                self.write("POST", f"/v2/shoal/loadbalancers/{lb_id}/revisions/{target}/rollback")

    def restart(self) -> None:
        """A new agent process: its state and position from disk, the data plane's maps
        kept (they are pinned)."""
        node_id = self.agent.node_id
        store = self.agent._store
        if store is not None:
            store.close()
        self.agent.health.close()
        self.agent = self.new_agent(self.balancer)
        self.agent.resume()
        saved = self.agent.seq
        if saved >= 0:
            self.agent.apply(self.agent.desired)
        self.agent.node_id = node_id  # registration answers the same id

    def switch(self) -> None:
        api = self.agent.api
        api._current = 1 - api._current

    def compact(self) -> None:
        with self.db.write() as session:
            feed.compact(session, keep=1)


def _client_of(client: TestClient, credential: str) -> httpx.Client:
    client.headers["X-Auth-Token"] = credential
    return client


def _reference(world: World) -> tuple[dict[str, Any], L4Agent]:
    """A fresh agent that applies one snapshot."""
    fresh = world.new_agent(Balancer.fake(max_vips=64, max_backends=1024), world.tmp / "fresh")
    fresh.node_id = world.agent.node_id
    snapshot = fresh.api.feed(fresh.node_id or "", position=0)
    assert snapshot.snapshot
    state = DesiredState.of(snapshot)
    fresh.apply(state)
    return state.comparable(), fresh


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """One pair of controllers and one agent for every example: each example starts where
    the last left off (more load balancers, older revisions), which the property allows."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        w = World(stack, Path(tmp))
        try:
            yield w
        finally:
            w.agent.health.close()


@settings(
    max_examples=int(os.environ.get("SHOAL_FEED_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops=st.lists(OPS, min_size=1, max_size=10))
def test_incremental_feed_and_apply_reach_what_a_full_apply_reaches(
    world: World, ops: list[Any]
) -> None:
    lagging = False
    for op in ops:
        if op[0] == "restart":
            world.restart()
        elif op[0] == "switch":
            world.switch()
        elif op[0] == "compact":
            world.compact()
        elif op[0] == "lag":
            lagging = True
            continue
        else:
            world.step(op)
        if not lagging:
            world.follow()
        lagging = False
    world.follow()
    expected, fresh = _reference(world)
    try:
        assert world.agent.desired.comparable() == expected
        assert world.agent.digests == fresh.digests
        assert sorted(map(str, world.agent.errors)) == sorted(map(str, fresh.errors))
        assert set(world.balancer.vips()) == set(fresh.lb.vips() if fresh.lb else {})
    finally:
        fresh.health.close()
        shutil.rmtree(world.tmp / "fresh", ignore_errors=True)
