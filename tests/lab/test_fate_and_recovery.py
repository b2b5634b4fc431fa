"""Fate sharing and stable recovery in the lab (issue 12, items 2 and 5). Each L4 node runs
`shoal agent fate` beside its BIRD: a node whose agent is dead and whose XDP program is gone
leaves the router's ECMP set within a second; a node whose agent dies while XDP forwards
stays. A node that resumes from a freeze (BIRD, agent and watchdog SIGSTOPped, then
SIGCONTed) rejoins ECMP once: the watchdog announces again only after BFD has been Up for
its hold-down, past the stale BFD session ids that used to tear the first BGP session down."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from shoal import netns
from shoal.dataplane import loader
from shoal.dataplane.balancer import Balancer
from shoal.lab.lab import Lab
from shoal.lab.traffic import EchoSessions, http_requests

from .conftest import FIGURES, wait_for
from .l4lb import L4Lb, create_l4_lb, l4_nodes

pytestmark = pytest.mark.netns
FREEZE_SECONDS = 3.5  # past BFD (0.3 s) and the BGP hold time (3 s), as in the node-failure test
WATCH_SECONDS = 8.0  # after the first rejoin: the second flap came about 3 s later
STALE_BFD = ("mismatched remote id", "unknown session id")


@pytest.fixture(scope="module")
def lb(lab: Lab) -> Iterator[L4Lb]:
    made = create_l4_lb(lab, "fate", {"b1": 1, "b2": 1})
    lab.wait_stable(made.vip, l4_nodes(lab))
    yield made
    made.delete()


def client_ns(lab: Lab) -> str:
    return str(lab.state.hosts["client"]["ns"])


def xdp_attached(lab: Lab, name: str) -> bool:
    with netns.entered(lab.state.hosts[name]["ns"]):
        return loader.xdp_prog_id(netns.ifindex("up0")) != 0


def time_until(predicate: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until predicate() held, None if it did not within timeout."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            return None
        time.sleep(0.01)
    return time.monotonic() - start


def restore(lab: Lab, lb: L4Lb, name: str) -> None:
    """The node's agent runs again (it re-attaches XDP) and the router has settled."""
    lab.resume_node(name)
    if not lab.running(f"agent-{name}"):
        lab.start_agent(name)
    wait_for(lambda: xdp_attached(lab, name), 30, f"{name}'s agent attaching XDP")
    lab.wait_stable(lb.vip, l4_nodes(lab), timeout=60)


def test_agent_killed_while_xdp_forwards_keeps_the_node(lab: Lab, lb: L4Lb) -> None:
    everyone = sorted(lab.state.hosts[n]["ip"] for n in l4_nodes(lab))
    try:
        with EchoSessions(client_ns(lab), lb.vip, 100, interval=0.1) as echo:
            lab.stop("agent-l4b", signal.SIGKILL)
            sets, end = [], time.monotonic() + 3.0
            while time.monotonic() < end:
                sets.append(lab.ecmp_nexthops(lb.vip))
                time.sleep(0.05)
            with netns.entered(client_ns(lab)):
                new = http_requests(lb.vip, 30, timeout=2, deadline=30)
    finally:
        restore(lab, lb, "l4b")
    left = sum(1 for s in sets if s != everyone)
    FIGURES["agent kill -9, XDP forwarding: samples with the node out of ECMP / broken"] = (
        f"{left} of {len(sets)} / {len(echo.broken)} of 100"
    )
    assert left == 0 and echo.broken == {} and new.failed == 0, (left, echo.broken, new.errors)


def test_agent_kill_and_xdp_detach_leave_ecmp_within_a_second(lab: Lab, lb: L4Lb) -> None:
    survivor = [lab.state.hosts["l4b"]["ip"]]
    try:
        lab.stop("agent-l4a", signal.SIGKILL)
        Balancer.detach("up0", netns_name=lab.state.hosts["l4a"]["ns"])
        left = time_until(lambda: lab.ecmp_nexthops(lb.vip) == survivor, 10)
    finally:
        restore(lab, lb, "l4a")
    FIGURES["agent kill -9 + XDP detach -> out of the router's ECMP set"] = (
        f"{left * 1000:.0f} ms" if left is not None else "still in it after 10 s"
    )
    assert left is not None and left < 1.0, left


def stale_bfd_lines(lab: Lab) -> int:
    count = 0
    for log in ("bird-router.log", "bird-l4a.log"):
        path = lab.dir / "logs" / log
        if path.exists():
            text = path.read_text(errors="replace")
            count += sum(text.count(s) for s in STALE_BFD)
    return count


def freeze_cycles(lab: Lab, lb: L4Lb, cycles: int) -> tuple[list[int], list[float], int]:
    """Per cycle: how many times l4a joined the ECMP set after it resumed, and how long
    after the resume the first join came; and the stale-BFD lines the BIRDs logged."""
    ip, nodes = lab.state.hosts["l4a"]["ip"], l4_nodes(lab)
    joins, first, stale_before = [], [], stale_bfd_lines(lab)
    for _ in range(cycles):
        lab.wait_stable(lb.vip, nodes, timeout=60)
        lab.freeze_node("l4a")
        frozen = time.monotonic()
        try:
            wait_for(lambda: ip not in lab.ecmp_nexthops(lb.vip), 5, "frozen l4a leaving")
            time.sleep(max(0.0, FREEZE_SECONDS - (time.monotonic() - frozen)))
        finally:
            lab.resume_node("l4a")
        resumed, count, inside, first_join = time.monotonic(), 0, False, None
        while True:
            now = time.monotonic()
            if first_join is None and now - resumed > 30:
                break
            if first_join is not None and now - first_join > WATCH_SECONDS:
                break
            now_inside = ip in lab.ecmp_nexthops(lb.vip)
            if now_inside and not inside:
                count += 1
                first_join = first_join or now
            inside = now_inside
            time.sleep(0.05)
        joins.append(count)
        first.append((first_join - resumed) if first_join else float("inf"))
        FIGURES[f"freeze/resume cycles so far ({cycles} planned): joins per cycle"] = joins
    return joins, first, stale_bfd_lines(lab) - stale_before


def check_freeze_cycles(lab: Lab, lb: L4Lb, cycles: int) -> None:
    try:
        joins, first, stale = freeze_cycles(lab, lb, cycles)
    finally:
        restore(lab, lb, "l4a")
    twice = sum(1 for j in joins if j > 1)
    FIGURES[f"{cycles} freeze/resume cycles: rejoined twice or more / never"] = (
        f"{twice} / {joins.count(0)}; back after {min(first):.1f}-{max(first):.1f} s; "
        f"stale-BFD log lines {stale}"
    )
    assert joins == [1] * cycles, joins


@pytest.mark.timeout(600)
def test_freeze_resume_rejoins_once(lab: Lab, lb: L4Lb) -> None:
    check_freeze_cycles(lab, lb, 5)


@pytest.mark.lab_slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(
    os.environ.get("SHOAL_LAB_SLOW") != "1", reason="20 freeze cycles, ~5 min: make lab-slow"
)
def test_twenty_freeze_resume_cycles_rejoin_once(lab: Lab, lb: L4Lb) -> None:
    check_freeze_cycles(lab, lb, 20)
