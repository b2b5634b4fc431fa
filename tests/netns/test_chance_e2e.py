"""Second chance end to end, with real TCP in namespaces: client -> XDP load balancer -> two
backends (tc decap). Long-lived flows are established on b1, b1 is drained, and then the load
balancer forgets every session, which is what an L4 node whose cache never saw the flows sees
(ECMP moved them to it). With second chance the flows still reach b1 (through b2, which has no
socket for them and sends them on), 0 broken; without it, every one of them meets b2's RST."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from shoal.dataplane.config import DataplaneConfig
from shoal.lab.l4mini import VIP4, VIP6, L4MiniLab
from shoal.lab.traffic import EchoSessions

pytestmark = pytest.mark.netns
FLOWS = 100


@pytest.fixture(scope="module")
def lab() -> Iterator[L4MiniLab]:
    with L4MiniLab(prefix=f"sc{os.getpid()}", backends=2) as lab:
        yield lab


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def forget_sessions(lab: L4MiniLab) -> int:
    sessions = lab.lb.maps.sessions
    keys = [k for k, _ in sessions.items()]
    for k in keys:
        sessions.delete(k)
    return len(keys)


@contextmanager
def forgetting(lab: L4MiniLab) -> Iterator[None]:
    """Forgets every session, again and again, until the block ends."""
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            forget_sessions(lab)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def with_settings(cfg: DataplaneConfig, settings: dict[str, object]) -> DataplaneConfig:
    return cfg.model_copy(update={"settings": cfg.settings.model_copy(update=settings)})


def drain_then_forget(
    lab: L4MiniLab, family: int, encap: str, second_chance: bool
) -> tuple[EchoSessions, dict[str, int]]:
    hosts = lab.backend_hosts
    addr = [h.ip4 if family == 4 else h.ip6 for h in hosts]
    settings = {"second_chance": second_chance}
    lab.lb.apply(with_settings(lab.config(family=family, encap=encap), settings))
    before = lab.decap.counters()
    echo = EchoSessions(lab.hosts["client"].ns, VIP4 if family == 4 else VIP6, FLOWS, interval=0.1)
    with echo:
        assert wait_for(lambda: echo.rounds >= 3)
        assert echo.on("b1") and echo.on("b2")
        drained = lab.config(
            [{"address": addr[0], "weight": 0}, {"address": addr[1]}],
            family=family,
            encap=encap,
        )
        # The cache is emptied while the drain is applied too, as a node that ECMP sends the
        # flows to at that moment sees them: each of its table writes is a moment a packet
        # can read.
        assert forget_sessions(lab) >= len(echo.on("b1"))
        with forgetting(lab):
            lab.lb.apply(with_settings(drained, settings))
        forget_sessions(lab)
        start = echo.rounds
        # Twenty exchanges on every flow after the cache was emptied (or every b1 flow broken).
        assert wait_for(lambda: echo.rounds >= start + 20 or len(echo.broken) >= len(echo.on("b1")))
    after = lab.decap.counters()
    return echo, {k: after[k] - before[k] for k in after}


CASES = [(4, "ipip"), (4, "gue"), (6, "ipip")]


@pytest.mark.parametrize(("family", "encap"), CASES, ids=["ipip", "gue4", "ip6ip6"])
def test_flows_on_a_drained_backend_survive_a_node_that_never_saw_them(
    lab: L4MiniLab, family: int, encap: str
) -> None:
    echo, decap = drain_then_forget(lab, family, encap, second_chance=True)
    print(f"second chance {encap}/{family}: {len(echo.broken)} of {len(echo.on('b1'))} b1 flows")
    assert echo.broken == {}, f"{len(echo.broken)} of {FLOWS} broken: {echo.broken}"
    # b2 sent b1's flows on (every exchange of each), and b1 delivered them.
    assert decap["chance_redirect"] >= 20 * len(echo.on("b1"))
    assert decap["chance_last"] >= decap["chance_redirect"]
    assert lab.lb.counters()["chance"] > 0


def test_without_second_chance_those_flows_break(lab: L4MiniLab) -> None:
    echo, decap = drain_then_forget(lab, 4, "ipip", second_chance=False)
    on_b1 = set(echo.on("b1"))
    print(f"without second chance: {len(echo.broken)} of {len(on_b1)} b1 flows broken")
    assert on_b1 and set(echo.broken) == on_b1, echo.broken
    assert decap["chance_redirect"] == 0


@pytest.mark.parametrize("second_chance", [True, False], ids=["second-chance", "without"])
def test_flows_survive_a_backend_added_and_a_node_that_never_saw_them(
    lab: L4MiniLab, second_chance: bool
) -> None:
    """The other direction: a member joins, Maglev gives it part of the old one's slots, and a
    node that never saw the flows would send those to the newcomer, which has no socket."""
    b1, b2 = (h.ip4 for h in lab.backend_hosts)
    settings: dict[str, object] = {"second_chance": second_chance}
    lab.lb.apply(with_settings(lab.config([{"address": b1}]), settings))
    echo = EchoSessions(lab.hosts["client"].ns, VIP4, FLOWS, interval=0.1)
    with echo:
        assert wait_for(lambda: echo.rounds >= 3)
        assert len(echo.on("b1")) == FLOWS
        both = lab.config([{"address": b1}, {"address": b2}])
        lab.lb.apply(with_settings(both, settings))
        assert forget_sessions(lab) >= FLOWS
        client = lab.hosts["client"].ip4
        traces = [lab.lb.trace(client, s.getsockname()[1], VIP4, 7, "tcp") for s in echo.socks]
        sent_to_b2 = [t for t in traces if t.backend == b2]
        assert all(t.previous == (b1 if second_chance else None) for t in sent_to_b2)
        start = echo.rounds
        assert wait_for(lambda: echo.rounds >= start + 20 or len(echo.broken) >= len(sent_to_b2))
    print(f"member added, {second_chance=}: {len(echo.broken)} of {len(sent_to_b2)} broken")
    assert sent_to_b2, "the new member took none of the flows' slots: the test proves nothing"
    assert len(echo.broken) == (0 if second_chance else len(sent_to_b2)), echo.broken
