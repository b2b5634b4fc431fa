"""The session table's two layouts (bpf/lb/session.h): shards of 128 sets in the kernel's
direct map (shoal_session_shards_v1, Linux >= 6.8) or one flat array (shoal_sessions_v2, older
kernels). The program and Python must agree on where every set lives, at the shards' edges too,
and a load that shards a table an older program kept flat carries its flows over."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from shoal.dataplane import abi, flowhash, packets
from shoal.dataplane import balancer as balancer_module
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.budget import PER_MAP
from shoal.dataplane.sessions import ShardedSets, set_index
from shoal.dataplane.testrun import XdpAction, run_xdp
from shoal.errors import BpfError, DataplaneError

from .harness import LB_MAC, VIP4, Net, config, vip

pytestmark = pytest.mark.bpf
CLIENT = "192.0.2.77"
TO_LB = bytes.fromhex(LB_MAC.replace(":", ""))
A, B = "10.1.0.1", "10.1.0.2"
SIZES = {"session_cache_size": 8192, "max_vips": 64, "max_backends": 1024}
PER_SHARD = 1 << abi.SESSION_SHARD_SHIFT


def cpu() -> int:
    return min(os.sched_getaffinity(0))  # conftest pins the tests to one CPU


def key(sport: int) -> abi.FlowKey:
    return flowhash.flow_key(CLIENT, VIP4, sport, 80, "tcp")


def send(lb: Balancer, net: Net, sport: int, flags: int) -> str:
    frame = packets.tcp_frame(CLIENT, VIP4, sport, 80, flags, b"x", dmac=TO_LB)
    res = run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex)
    assert res.action == XdpAction.TX
    return str(Ether(res.frame)[IP].dst)


def edge_ports(lb: Balancer) -> dict[int, int]:
    """Client port per set index at the shards' edges of this CPU's stripe (first and last
    set of a shard, the stripe's first and last set), where an off-by-one would show."""
    g = lb.maps.sessions.geom()
    first = cpu() * g.sets
    wanted = {first, first + g.sets - 1}
    for s in range(first, first + g.sets):
        if s % PER_SHARD in (0, PER_SHARD - 1):
            wanted.add(s)
    found: dict[int, int] = {}
    for sport in range(1024, 65536):
        idx = set_index(key(sport), g, cpu())
        if idx in wanted and idx not in found:
            found[idx] = sport
            if len(found) == len(wanted):
                break
    return found


def pin_then_drain(lb: Balancer, net: Net, sports: list[int]) -> None:
    """Every flow's entry names A, then A drains: B is every flow's fresh pick."""
    lb.apply(config(vip(backends=[{"address": A}])))
    for p in sports:
        assert send(lb, net, p, packets.TCP_SYN) == A
    lb.apply(config(vip(backends=[{"address": A, "weight": 0}, {"address": B}])))


@pytest.fixture
def instance(net: Net) -> Iterator[str]:
    name = f"shards{os.getpid()}"
    Balancer.purge(name)
    yield name
    Balancer.purge(name)


@pytest.fixture(params=["sharded", "flat"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(balancer_module, "sharded_layout", lambda: request.param == "sharded")
    yield request.param


def test_the_program_and_python_agree_on_every_shard_edge(net: Net, layout: str) -> None:
    with Balancer.load(pin=False, **SIZES) as lb:
        assert isinstance(lb.maps.sessions.sets.store, ShardedSets) == (layout == "sharded")
        assert lb.maps.sessions.geom().shard_shift == (
            abi.SESSION_SHARD_SHIFT if layout == "sharded" else 0
        )
        ports = edge_ports(lb)
        assert len(ports) >= 4
        pin_then_drain(lb, net, list(ports.values()))
        for idx, sport in ports.items():
            placed = lb.maps.sessions.find(key(sport))
            assert [p.cpu for p in placed] == [cpu()], (idx, sport)
            assert send(lb, net, sport, packets.TCP_ACK) == A, idx  # the program read it
        assert len(lb.maps.sessions) == len(ports)
        # An entry written from Python is honoured by the program, in the last set too.
        moved = ports[max(ports)]
        lb.maps.sessions.delete(key(moved))
        assert send(lb, net, moved, packets.TCP_ACK) == B  # no entry: the fresh pick
        val = lb.maps.sessions.get(key(ports[min(ports)]))
        assert val is not None
        lb.maps.sessions.set(key(moved), val, cpu=cpu())
        # The copied entry may be older than the flow's own SYN: that would read as an older
        # connection's entry (lb/session.h), so the SYN is forgotten with it.
        lb.maps.sessions.forget_syn(key(moved))
        assert send(lb, net, moved, packets.TCP_ACK) == A


def test_a_shard_stays_under_the_kernels_kmalloc_size() -> None:
    """A shard's array (header and values) must fit the 32 KiB up to which the kernel takes
    an array's memory from kmalloc (the direct map) instead of vmalloc."""
    shard = PER_MAP + PER_SHARD * ((ctypes.sizeof(abi.SessionSet) + 7) // 8 * 8)
    assert shard <= 32 * 1024


def test_a_pinned_flat_table_is_carried_into_shards(
    net: Net, instance: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(balancer_module, "sharded_layout", lambda: False)
    with Balancer.load(instance, **SIZES) as old:
        ports = list(edge_ports(old).values())
        pin_then_drain(old, net, ports)
        seed = old.maps.sessions.geom().seed
        held = {p: old.session(key(p)) for p in ports}
    assert all(v is not None for v in held.values())
    flat = Balancer.pin_dir(instance) / "shoal_sessions_v2"
    assert flat.exists()
    monkeypatch.setattr(balancer_module, "sharded_layout", lambda: True)
    with Balancer.load(instance, **SIZES) as new:
        assert isinstance(new.maps.sessions.sets.store, ShardedSets)
        g = new.maps.sessions.geom()
        assert (g.seed, g.shard_shift) == (seed, abi.SESSION_SHARD_SHIFT)
        for p in ports:
            got = new.session(key(p))
            assert got is not None and bytes(got) == bytes(held[p])
            assert send(new, net, p, packets.TCP_ACK) == A
    # The pinned instance opens as the agents and the CLI open it: the shards, by the pins.
    opened = Balancer.open(instance)
    try:
        assert isinstance(opened.maps.sessions.sets.store, ShardedSets)
        assert len(opened.maps.sessions) == len(ports)
    finally:
        opened.close()
    # A reload of the sharded table keeps it (nothing to carry any more).
    with Balancer.load(instance, **SIZES) as again:
        assert all(again.session(key(p)) is not None for p in ports)


def test_a_set_outside_the_table_is_refused(lb: Balancer) -> None:
    store = lb.maps.sessions.sets.store
    if not isinstance(store, ShardedSets):
        pytest.skip("this kernel keeps the flat layout")
    with pytest.raises(DataplaneError, match="outside the table"):
        store.lookup(store.max_entries.to_bytes(4, "little"))
    assert len(store.lookup_all_array()) == store.max_entries * store.value_size


@pytest.mark.parametrize("where", ["loader", "carry"])
def test_a_load_that_fails_after_taking_the_flat_table_pins_it_again(
    net: Net, instance: str, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Refused by the verifier (before any map of the new object is pinned), or after the
    object loaded and its shards were made (while carrying the flows)."""
    monkeypatch.setattr(balancer_module, "sharded_layout", lambda: False)
    with Balancer.load(instance, **SIZES) as old:
        ports = list(edge_ports(old).values())
        pin_then_drain(old, net, ports)
        held = {p: old.session(key(p)) for p in ports}
    assert all(v is not None for v in held.values())
    monkeypatch.setattr(balancer_module, "sharded_layout", lambda: True)

    def refused(*args: object, **kwargs: object) -> None:
        raise BpfError("bpf_object__load (the verifier, in this test)", errno.EACCES)

    with monkeypatch.context() as m:
        if where == "loader":
            m.setattr(balancer_module.loader, "BpfObject", refused)
        else:
            m.setattr(balancer_module.pins, "carry_flat_sessions", refused)
        with pytest.raises(BpfError):
            Balancer.load(instance, **SIZES)
    # The retry still finds every flow, now in shards.
    with Balancer.load(instance, **SIZES) as new:
        assert isinstance(new.maps.sessions.sets.store, ShardedSets)
        for p in ports:
            got = new.session(key(p))
            assert got is not None and bytes(got) == bytes(held[p])
