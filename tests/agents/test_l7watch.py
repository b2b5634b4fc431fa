"""The L4 node's own check of the L7 nodes: verdicts from consecutive probes, the desired
state it rewrites, and the real agent taking a proxy whose HAProxy stopped listening out of
its data plane on its own, well before the controller would."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.agents.api import AgentApi
from shoal.agents.bgp import NullSpeaker
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.agents.l4.l7watch import L7Target, L7Watch, mark_dead, targets_from
from shoal.dataplane.balancer import Balancer
from shoal.wire.feed import DesiredState


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def desired_state(ports: dict[str, int], healthy: bool = True) -> dict[str, Any]:
    nodes = [
        {"id": "n1", "address": "127.0.0.1", "state": "ACTIVE", "healthy": healthy},
        {"id": "n2", "address": "127.0.0.2", "state": "ACTIVE", "healthy": True},
    ]
    config = {
        "kind": "l7",
        "admin_state_up": True,
        "vip_address": "10.200.0.5",
        "listeners": [
            {"id": "li1", "protocol": "HTTP", "protocol_port": 80, "admin_state_up": True}
        ],
    }
    return {
        "seq": 1,
        "settings": {"seed": "l7watch-test"},
        "node": {"admin_state": "ACTIVE"},
        "load_balancers": [{"id": "lb1", "revision": 1, "config": config, "l7_nodes": nodes}],
        "node_checks": [
            {"node_id": n, "address": a, "port": ports[n], "interval": 1.0}
            for n, a in (("n1", "127.0.0.1"), ("n2", "127.0.0.2"))
            if n in ports
        ],
    }


def test_verdicts_need_consecutive_results() -> None:
    results = {"a": True, "b": True}
    changes: list[set[str]] = []
    watch = L7Watch(changes.append, interval=3600, probe=lambda a, p, t: results[a])
    try:
        watch.update({"a": L7Target("a", 1), "b": L7Target("b", 1)})
        watch.tick()
        results["b"] = False
        watch.tick()
        assert watch.dead() == set() and changes == []  # one failure is no verdict
        watch.tick()
        assert watch.dead() == {"b"} and changes == [{"b"}]
        results["b"] = True
        watch.tick()
        assert watch.dead() == {"b"}
        watch.tick()
        assert watch.dead() == set() and changes == [{"b"}, set()]
        results["a"] = False
        watch.tick()
        watch.tick()
        assert watch.dead() == {"a"}
        watch.update({"b": L7Target("b", 1)})  # a's placements are gone: so is its verdict
        assert watch.dead() == set()
    finally:
        watch.close()


def test_mark_dead_only_takes_nodes_out() -> None:
    desired = DesiredState.of(desired_state({"n1": 1}))
    assert mark_dead(desired, set()) is desired

    def health(state: DesiredState) -> dict[str, bool]:
        return {n.id: n.healthy for n in state.lbs["lb1"].l7_nodes or []}

    assert health(mark_dead(desired, {"n2"})) == {"n1": True, "n2": False}
    # The input is left as it was (the translation cache compares against it).
    assert health(desired) == {"n1": True, "n2": True}
    # Every healthy placement dead from here: more likely this node's fault; keep them. And a
    # node the controller calls down is never brought back.
    assert mark_dead(desired, {"n1", "n2"}).lbs["lb1"] is desired.lbs["lb1"]
    one_left = DesiredState.of(desired_state({"n1": 1}, healthy=False))
    assert health(mark_dead(one_left, {"n1", "n2"})) == {"n1": False, "n2": True}
    assert targets_from(desired, 8404) == {
        "n1": L7Target("127.0.0.1", 1),
        "n2": L7Target("127.0.0.2", 8404),
    }


@pytest.fixture
def monitors() -> Iterator[dict[str, socket.socket]]:
    socks = {}
    for node, host in (("n1", "127.0.0.1"), ("n2", "127.0.0.2")):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        s.listen(64)
        socks[node] = s
    yield socks
    for s in socks.values():
        s.close()


def test_the_agent_takes_a_dead_proxy_out_on_its_own(
    tmp_path: Path, monitors: dict[str, socket.socket]
) -> None:
    ports = {n: s.getsockname()[1] for n, s in monitors.items()}
    cfg = L4AgentConfig(
        controller="http://127.0.0.1:1",
        token="unused",
        name="l4-a",
        interface="unused0",
        state_dir=tmp_path,
        serve_prefixes=["10.200.0.0/16"],
    )
    node = L4Agent(cfg, AgentApi(cfg.controller, cfg.token), NullSpeaker())
    node.lb, node.dataplane_ok = Balancer.fake(), True

    def health() -> dict[str, bool]:
        assert node.lb is not None
        (vip,) = node.lb.current_vips()
        return {str(b.address): b.healthy for b in vip.backends}

    try:
        node.apply(desired_state(ports))
        assert health() == {"127.0.0.1": True, "127.0.0.2": True}
        monitors["n2"].close()  # HAProxy on n2 stops: its monitor port refuses
        started = time.monotonic()
        assert wait_for(lambda: health()["127.0.0.2"] is False)
        took = time.monotonic() - started
        assert health()["127.0.0.1"] is True
        assert any(e["kind"] == "l7_nodes_unreachable" for e in node._pending_events)
        print(f"L7 node out of the L4 data plane after {took * 1000:.0f} ms")
        assert took < 5.0  # 2 probes 0.1 s apart: about 0.2 s on an idle machine
        # The controller's next state (still healthy there) does not bring it back.
        node.apply(desired_state(ports))
        assert health()["127.0.0.2"] is False
        again = socket.socket()
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.2", ports["n2"]))
        again.listen(64)
        monitors["n2"] = again
        assert wait_for(lambda: health()["127.0.0.2"] is True)
    finally:
        node.stop(withdraw=False)
        node.close()
