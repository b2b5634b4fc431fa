"""The L7 agent's incremental apply on a real HAProxy: member changes of every kind go
through the runtime API with no reload and no failed request, and the file they leave is
exactly what a full render of the same state gives, also after a later reload; changes that
need a reload arriving within reload_batch of the last one share one reload, and the node
reports only the position HAProxy runs; a node of hundreds of listeners still reloads."""

from __future__ import annotations

import copy
import http.client
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal import netns
from shoal.agents.l7.render import render

from .test_agent import Node, get, members, simple_lb, spread

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)"),
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy"),
]

# Seconds: long enough that a loaded 2-core machine still lands four applies (each with a
# `haproxy -c`) inside the window; the test then waits for the window's end.
BATCH = 8.0
SHORT = 1.0


@pytest.fixture(params=[0.0], ids=["batch0"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Node]:
    ns = f"shoal-l7i{os.getpid() % 100000}"
    netns.delete(ns)
    netns.add(ns)
    n = None
    try:
        n = Node(ns, tmp_path, reload_batch=request.param)
        yield n
    finally:
        if n is not None:
            n.close()
        netns.delete(ns)


def full_render(node: Node, *lbs: dict[str, Any]) -> str:
    """What the agent would write for these load balancers from nothing."""
    agent = node.agent
    assert agent.applied is not None
    return render(
        agent.cfg.name,
        [copy.deepcopy(lb) for lb in lbs],
        {},
        run_dir=str(agent.home),
        crt_dir=str(agent.applied.tls_dir),
        **agent._opts(list(lbs)),
    ).config


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except OSError:  # the master socket refuses connections while it re-executes
            pass
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


class Load:
    """Requests on fresh connections until stopped (bounded: 60 s, 5,000 requests)."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.results: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        end = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < end and self.total < 5000:
            try:
                status = get(self.ns)[0]
                self.results[str(status)] += 1
                if status != 200:
                    self.failures.append(f"HTTP {status}")
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{exc.__class__.__name__}: {exc}")

    @property
    def total(self) -> int:
        return sum(self.results.values())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_member_changes_reload_nothing_fail_nothing_and_leave_a_full_render(node: Node) -> None:
    lb = simple_lb(names=("s1", "s2"))
    node.apply(lb)
    reloads, runtime = node.reloads(), node.agent.runtime_changes
    load = Load(node.ns)
    pool = lb["pools"][0]
    try:
        wait_for(lambda: load.total >= 5, 10, "no request went through before the changes")
        steps = [
            lambda: pool["members"].append(members("s3")[0]),  # add
            lambda: pool["members"][0].update(weight=5),  # weight
            lambda: pool["members"][0].update(weight=0),  # drain
            lambda: pool["members"][1].update(admin_state_up=False),  # disable
            lambda: pool["members"][1].update(admin_state_up=True),  # enable
            lambda: pool["members"].pop(0),  # remove
        ]
        for step in steps:
            seen = load.total
            step()
            node.apply(lb)
            assert node.agent.proxy.config.read_text() == full_render(node, lb)
            wait_for(lambda s=seen: load.total >= s + 3, 10, "requests stalled after a change")
    finally:
        load.stop()
    assert not load.failures, load.failures[:5]
    assert node.reloads() == reloads  # HAProxy's own count, not the agent's
    assert node.agent.runtime_changes == runtime + len(steps)
    assert set(spread(node.ns)) == {"s2", "s3"}
    # A later reload starts from that file: the same servers, weights and states.
    lb["listeners"][0]["timeout_client_data"] = 30000
    node.apply(lb)
    assert node.reloads() == reloads + 1
    assert node.agent.proxy.config.read_text() == full_render(node, lb)
    assert set(spread(node.ns)) == {"s2", "s3"}


@pytest.mark.parametrize("node", [BATCH], ids=["batched"], indirect=True)
def test_reloads_inside_the_window_are_batched_and_reported_when_done(node: Node) -> None:
    lb = simple_lb(names=("s1", "s2"))
    node.apply(lb)  # the first reload: at once
    reloads = node.reloads()
    reported: list[int] = []
    node.agent.node_id = "n1"
    node.agent.api.report = lambda _id, seq, *a, **k: reported.append(seq)  # type: ignore[method-assign]
    li = lb["listeners"][0]
    for timeout in (41000, 42000, 43000):  # three reloads' worth, inside the window
        li["timeout_client_data"] = timeout
        node.apply(lb)
    lb["pools"][0]["members"][0]["weight"] = 3  # a member change rides along
    node.apply(lb)
    node.agent.report()
    assert time.monotonic() - node.agent._last_reload < BATCH, "the machine is too slow"
    assert node.reloads() == reloads  # none yet
    assert reported[-1] < node.seq  # the controller is not told what HAProxy does not run
    wait_for(lambda: node.reloads() == reloads + 1, 3 * BATCH + 10, "batched reload never ran")
    wait_for(lambda: reported[-1] == node.seq, 10, "the reached position was not reported")
    assert node.agent.proxy.config.read_text() == full_render(node, lb)
    assert "timeout client 43000ms" in node.agent.proxy.config.read_text()
    assert get(node.ns)[0] == 200
    assert node.reloads() == reloads + 1  # one reload for four changes


@pytest.mark.parametrize("node", [SHORT], ids=["short"], indirect=True)
def test_a_reload_outside_the_window_is_not_delayed(node: Node) -> None:
    lb = simple_lb(names=("s1",))
    node.apply(lb)
    wait_for(lambda: time.monotonic() - node.agent._last_reload > SHORT, SHORT + 5, "clock stuck")
    reloads = node.reloads()
    lb["listeners"][0]["timeout_client_data"] = 40000
    node.apply(lb)
    assert node.reloads() == reloads + 1


def test_hundreds_of_listeners_still_reload_and_change_members_at_runtime(node: Node) -> None:
    """maxconn leaves descriptors for listeners and servers: a reload HAProxy cannot do
    ("Cannot raise FD limit") leaves the old worker serving the old configuration."""
    lbs = []
    for i in range(150):
        lb = simple_lb(names=("s1", "s2"))
        lb["id"] = f"lb-{i:03d}"
        lb["vip_address"] = f"10.77.1.{i + 1}"
        lb["listeners"][0]["id"] = f"li-{i:03d}"
        lb["listeners"][0]["default_pool_id"] = f"pool-{i:03d}"
        lb["pools"][0]["id"] = f"pool-{i:03d}"
        for m in lb["pools"][0]["members"]:
            m["id"] = f"{m['id']}-{i:03d}"
        lbs.append(lb)
    node.apply(*lbs)
    backends = node.agent.proxy.command("show backend")
    assert "p_pool-149" in backends  # the new worker runs the new configuration
    reloads = node.reloads()
    lbs[77]["pools"][0]["members"][0]["weight"] = 0
    node.apply(*lbs)
    assert node.reloads() == reloads
    row = next(
        r
        for r in node.agent.proxy.stats()
        if r["pxname"] == "p_pool-077" and r["svname"] == "m_m-s1-077"
    )
    assert row["weight"] == "0"


def test_a_reload_haproxy_cannot_load_is_an_error_not_a_success(node: Node) -> None:
    """`haproxy -c` passes a maxconn beyond the descriptor limit; the re-executed master
    then keeps the old worker. The agent must not record that as applied."""
    import resource

    from shoal.errors import ShoalError

    lb = simple_lb(names=("s1",))
    node.apply(lb)
    proxy = node.agent.proxy
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard > 10_000_000:
        pytest.skip("no descriptor limit to exceed")
    text = proxy.config.read_text()
    too_many = "\n".join(
        f"    maxconn {hard}" if line.strip().startswith("maxconn") and i < 20 else line
        for i, line in enumerate(text.splitlines())
    )
    proxy.write_unchecked(too_many + "\n")
    with pytest.raises(ShoalError, match="could not load"):
        proxy.reload()
    assert get(node.ns)[0] == 200  # the old worker still serves


def test_a_member_value_cannot_smuggle_runtime_commands(node: Node) -> None:
    """The attacker's test: a member address carrying `;` and a second CLI command. The
    runtime path must not send it (HAProxy's CLI would run both parts); the checked path
    refuses the load balancer and reports it."""
    lb = simple_lb(names=("s1", "s2"))
    node.apply(lb)
    runtime = node.agent.runtime_changes
    sent: list[str] = []
    real = node.agent.proxy.command

    def spy(cmd: str) -> str:
        sent.append(cmd)
        return real(cmd)

    node.agent.proxy.command = spy  # type: ignore[method-assign]
    evil = members("s3")[0]
    evil["address"] = "127.0.0.1;disable server p_pool-a/m_m-s1"
    lb["pools"][0]["members"].append(evil)
    node.apply(lb)
    assert not [c for c in sent if ";" in c or "disable server" in c]
    assert node.agent.runtime_changes == runtime
    (error,) = node.agent.errors
    assert error["load_balancer_id"] == lb["id"] and "HAProxy refused" in error["reason"]
