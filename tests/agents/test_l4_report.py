"""What the L4 agent reports to the controller beyond its applied position: its BGP/BFD
sessions as BIRD gives them (parsed from birdc's long form, joined per neighbour, "unknown"
when BIRD does not answer), the VIPs it announces, and per-backend traffic of the VIPs it
serves. The body must pass the controller's own model (shoal.wire.report.NodeReport)."""

from __future__ import annotations

import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from shoal.agents.api import AgentApi
from shoal.agents.birdstate import BirdState, parse_bfd, parse_protocols, peers, routing_state
from shoal.agents.l4.agent import L4Agent, L4AgentConfig
from shoal.bench.applycost import desired_state
from shoal.dataplane import abi
from shoal.dataplane.balancer import Balancer
from shoal.wire.feed import DesiredState
from shoal.wire.report import MAX_PEERS, NodeReport

PROTOCOLS_ALL = """BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     12:01:02.123
bfd1       BFD        ---        up     12:01:02.123
uplink     BGP        ---        up     12:01:03.456  Established
  BGP state:          Established
    Neighbor address: 10.88.1.1
    Neighbor AS:      65000
    Local AS:         65001
  Channel ipv4
    State:          UP
    Route change stats:     received   rejected   filtered    ignored   accepted
backup     BGP        ---        start  12:01:03.456  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 10.88.1.2
    Neighbor AS:      65000
nobfd      BGP        ---        start  12:01:04.000  Idle
  BGP state:          Idle
    Neighbor address: 10.88.1.9
"""
BFD = """BIRD 2.0.12 ready.
bfd1:
IP address                Interface  State      Since         Interval  Timeout
10.88.1.1                 up0        Up         12:01:03.500    0.100    0.300
10.88.1.2                 up0        Down       12:01:03.500    1.000    0.000
"""


def test_the_long_form_gives_state_since_and_neighbour() -> None:
    bgp = parse_protocols(PROTOCOLS_ALL)
    assert [(s.name, s.bgp_state, s.since, s.neighbor) for s in bgp] == [
        ("uplink", "Established", "12:01:03.456", "10.88.1.1"),
        ("backup", "Active", "12:01:03.456", "10.88.1.2"),
        ("nobfd", "Idle", "12:01:04.000", "10.88.1.9"),
    ]
    assert [s.established for s in bgp] == [True, False, False]


def test_bgp_and_bfd_are_joined_per_neighbour() -> None:
    rows = peers(parse_protocols(PROTOCOLS_ALL), parse_bfd(BFD))
    assert [(p.name, p.bgp_state, p.bfd_state, p.bfd_since) for p in rows] == [
        ("uplink", "Established", "Up", "12:01:03.500"),
        ("backup", "Active", "Down", "12:01:03.500"),
        ("nobfd", "Idle", "", ""),
    ]


def test_garbage_and_huge_answers_stay_bounded() -> None:
    """A BIRD (or something on its socket) that answers nonsense or thousands of sessions
    cannot make the report too big or invalid."""
    many = "\n".join(f"p{i}{'x' * 100} BGP --- up {'9' * 50} Established" for i in range(500))
    rows = peers(parse_protocols(many), [])
    assert len(rows) == MAX_PEERS
    NodeReport.model_validate({"seq": 0, "routing": {"bird": "ok", "peers": rows}})
    assert peers(parse_protocols("\x00\x01 garbage\n  indented: only\n"), []) == []


def test_a_broken_birdc_is_unknown_not_a_crash(tmp_path: Path) -> None:
    state = routing_state(BirdState(tmp_path / "no-such.ctl"), announced=2)
    assert state.bird == "unknown" and state.peers == [] and state.announced == 2
    assert state.error and "\n" not in state.error
    fake = tmp_path / "birdc"  # a birdc that crashes
    fake.write_text("#!/bin/sh\necho 'Segmentation fault' >&2\nexit 139\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    state = routing_state(BirdState(tmp_path / "x.ctl", binary=str(fake)), announced=0)
    assert state.bird == "unknown" and "Segmentation fault" in state.error
    missing = routing_state(BirdState(tmp_path / "x.ctl", binary="/nonexistent/birdc"), 0)
    assert missing.bird == "unknown"
    assert routing_state(None, announced=1).bird == "none"


class RecordingApi:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def report(self, node_id: str, seq: int, *args: Any, **kwargs: Any) -> None:
        # The agent's own client builds the body: reuse it against a recorder.
        AgentApi.report(cast(AgentApi, self), node_id, seq, *args, **kwargs)

    def _call(self, method: str, path: str, json: dict[str, Any]) -> None:
        self.bodies.append(json)


@pytest.fixture
def agent() -> Iterator[tuple[L4Agent, RecordingApi]]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = L4AgentConfig(controller="", token="", name="n1", interface="lo", state_dir=Path(tmp))
        api = RecordingApi()
        a = L4Agent(cfg, cast(AgentApi, api), bird=BirdState(Path(tmp) / "none.ctl"))
        a.lb = Balancer.fake(max_vips=64, max_backends=1024)
        a.desired = DesiredState.of({**desired_state(3, 2), "seq": 5})
        a.apply(a.desired)
        for slot in a.lb.backends():  # traffic everywhere: a backend with none is not sent
            a.lb.maps.backend_stats.set_all(slot, abi.Traffic(packets=1, bytes=100))
        a.node_id = "node-1"
        try:
            yield a, api
        finally:
            a.health.close()


def test_the_report_carries_routing_and_backend_traffic(
    agent: tuple[L4Agent, RecordingApi],
) -> None:
    a, api = agent
    lb = a.lb
    assert lb is not None
    name, vip = sorted(lb.vips().items())[0]
    slot = next(s for s, b in lb.backends().items() if b.vip_id == vip.vip_id)
    lb.maps.backend_stats.set_all(slot, abi.Traffic(packets=4, bytes=600))
    a.report()
    body = NodeReport.model_validate(api.bodies[-1])  # what the controller accepts
    assert body.routing is not None and body.routing.bird == "unknown"
    assert body.routing.announced == len(a.speaker.announced)
    ncpus = lb.maps.backend_stats.ncpus
    mine = [b for b in body.backends if b.vip == name]
    assert {(b.packets, b.bytes) for b in mine} == {(4 * ncpus, 600 * ncpus), (ncpus, 100 * ncpus)}
    assert {b.load_balancer_id for b in mine} == {a.vip_owner[name]}
    # 3 load balancers of 2 members, one VIP each: every backend slot, none other
    assert len(body.backends) == 6


def test_backends_of_vips_no_load_balancer_owns_are_not_reported(
    agent: tuple[L4Agent, RecordingApi],
) -> None:
    a, api = agent
    a.vip_owner = dict(list(a.vip_owner.items())[:1])
    a.report()
    body = NodeReport.model_validate(api.bodies[-1])
    assert {b.vip for b in body.backends} == set(a.vip_owner)


def test_bird_is_asked_at_most_every_few_seconds(agent: tuple[L4Agent, RecordingApi]) -> None:
    a, _ = agent
    first = a.routing()
    assert a.routing() is first  # cached: reports after every apply do not fork birdc each
    a._routing = None
    assert a.routing() is not first


def test_backend_traffic_rides_at_most_every_few_seconds(
    agent: tuple[L4Agent, RecordingApi],
) -> None:
    """A report follows every change; per-backend traffic (most of a report's size at 100,000
    backends) does not: the controller keeps the last list meanwhile."""
    a, api = agent
    a.report()
    a.report()
    first, second = (NodeReport.model_validate(b) for b in api.bodies[-2:])
    assert first.backends is not None and len(first.backends) == 6
    assert second.backends is None and second.routing is not None
    a._traffic_at = time.monotonic() - a.traffic_every
    a.report()
    assert NodeReport.model_validate(api.bodies[-1]).backends is not None


def test_backend_traffic_is_capped_busiest_first(
    agent: tuple[L4Agent, RecordingApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = agent
    lb = a.lb
    assert lb is not None
    busiest = max(lb.backends())
    lb.maps.backend_stats.set_all(busiest, abi.Traffic(packets=9, bytes=900))
    monkeypatch.setattr("shoal.agents.l4.agent.MAX_BACKENDS", 2)
    sent = a.backend_traffic()
    assert len(sent) == 2 and sent[0].packets == 9 * lb.maps.backend_stats.ncpus


def only_one_busy(lb: Balancer, traffic: abi.Traffic) -> tuple[str, int]:
    """Every backend idle but one slot of the first VIP, which (with its VIP) carried traffic:
    the VIP's name and that slot."""
    for slot in lb.backends():
        lb.maps.backend_stats.set_all(slot, abi.Traffic())
    name, vip = sorted(lb.vips().items())[0]
    slot = next(s for s, b in lb.backends().items() if b.vip_id == vip.vip_id)
    lb.maps.backend_stats.set_all(slot, traffic)
    lb.maps.vip_stats.set_all(vip.vip_id, traffic)
    return name, slot


def test_what_never_carried_a_packet_is_not_sent(agent: tuple[L4Agent, RecordingApi]) -> None:
    """Backends and load balancers without traffic are left out (the controller reads an
    absent one as 0): at 10,000 load balancers of 10 members a report of zeros was
    100,000 entries."""
    a, api = agent
    lb = a.lb
    assert lb is not None
    name, _ = only_one_busy(lb, abi.Traffic(packets=2, bytes=80))
    a.report()
    body = NodeReport.model_validate(api.bodies[-1])
    assert body.backends is not None and [b.vip for b in body.backends] == [name]
    per_lb = body.counters["load_balancers"]
    ncpus = lb.maps.vip_stats.ncpus
    assert per_lb == {a.vip_owner[name]: {"bytes_in": 80 * ncpus, "packets_in": 2 * ncpus}}


def test_a_traffic_report_looks_up_only_what_carried_packets(
    agent: tuple[L4Agent, RecordingApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 100,000 backend slots a walk of every slot was ~240 ms of the agent's CPU per
    traffic report: the busy slots and VIPs come from the counters, and only they are named."""
    a, _ = agent
    lb = a.lb
    assert lb is not None
    name, busy = only_one_busy(lb, abi.Traffic(packets=3, bytes=90))

    def every_slot() -> None:
        raise AssertionError("walked every backend slot")

    monkeypatch.setattr(lb, "backend_slots", every_slot)
    asked: list[list[int]] = []
    of = lb.backend_slots_of
    monkeypatch.setattr(
        lb, "backend_slots_of", lambda slots: asked.append(list(slots)) or of(slots)
    )
    sent = a.backend_traffic()
    assert asked == [[busy]] and [(b.vip, b.packets) for b in sent] == [
        (name, 3 * lb.maps.backend_stats.ncpus)
    ]
    assert set(a.counters()["load_balancers"]) == {a.vip_owner[name]}
    lb.maps.backend_stats.set_all(busy, abi.Traffic())
    asked.clear()
    assert a.backend_traffic() == [] and asked == []  # nothing carried: nothing looked up


def test_a_traffic_report_reads_the_counter_rows_in_use_not_the_capacity(
    agent: tuple[L4Agent, RecordingApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixture's 3 VIPs of 2 backends use 3 of 64 VIP ids and 6 of 1,024 slots: a
    traffic report reads those rows (at a node's 131,072 slots the whole map was ~90 ms)."""
    a, _ = agent
    lb = a.lb
    assert lb is not None
    read: dict[str, list[int | None]] = {"vip": [], "backend": []}
    for kind, stats in (("vip", lb.maps.vip_stats), ("backend", lb.maps.backend_stats)):
        whole = stats.sums
        monkeypatch.setattr(
            stats, "sums", lambda rows=None, w=whole, k=kind: read[k].append(rows) or w(rows)
        )
    a.report()
    assert read == {"vip": [3], "backend": [6]}
