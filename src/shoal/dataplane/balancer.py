"""The L4 data plane's Python API: load, attach, apply VIPs and backends, read counters, trace.

`Balancer.apply(config)` reconciles by level: it reads what the maps hold, computes every table
first (so a bad config changes nothing), then writes in an order that never exposes a packet to
a half-made state: new backends, then table swaps (atomic per VIP), then VIP entries, then
removals. Backend ids are per (VIP, address) and carry a generation, so a session entry can
never follow a reused id to the wrong backend."""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from shoal import netns
from shoal.dataplane import abi, clock, flowhash, loader, maglev, pins, vipfilter
from shoal.dataplane import libbpf as bpf
from shoal.dataplane.acl import AclPlan, AclTables, acl_ids_of, plan_acl
from shoal.dataplane.applied import Allocator, AppliedVip, Mirror, VipState, spec_digest
from shoal.dataplane.config import BackendSpec, DataplaneConfig, Settings, VipSpec
from shoal.dataplane.maps import FakeMap, KernelMap, MapStore, PerCpuMap, TypedMap
from shoal.dataplane.sessions import (
    SessionTable,
    ShardedSets,
    sets_for,
    sharded_layout,
    shards_for,
)
from shoal.dataplane.sessions import alive as session_alive
from shoal.dataplane.sessions import superseded as session_superseded
from shoal.dataplane.tablecache import TableCache, ids_hash
from shoal.dataplane.tables import ClassMaps, FakeTables, KernelTables, Swap, TableStore
from shoal.errors import ConfigError, DataplaneError

__all__ = [
    "ApplyReport",
    "BackendStatus",
    "Balancer",
    "FloodStatus",
    "FlowTrace",
    "LbMaps",
    "SpecChanges",
    "VipStatus",
]

PROTO_NUM = {"tcp": 6, "udp": 17}
PROTO_NAME: dict[int, Literal["tcp", "udp"]] = {6: "tcp", 17: "udp"}
PROG_NAME = "shoal_lb"
NEXTHOP_MAX_AGE = 1.0  # seconds; new flows refresh older cached next hops


@dataclass
class LbMaps:
    vips: TypedMap[abi.VipKey, abi.VipVal]
    backends: TypedMap[ctypes.c_uint32, abi.Backend]
    sessions: SessionTable
    config: TypedMap[ctypes.c_uint32, abi.Config]
    flood: PerCpuMap[ctypes.c_uint32, abi.FloodState]
    counters: PerCpuMap[ctypes.c_uint32, ctypes.c_uint64]
    vip_stats: PerCpuMap[ctypes.c_uint32, abi.Traffic]
    backend_stats: PerCpuMap[ctypes.c_uint32, abi.Traffic]
    nexthops: PerCpuMap[ctypes.c_uint32, abi.Nexthop]
    vip_filter: TypedMap[ctypes.c_uint32, ctypes.c_uint64]
    acl: AclTables
    acl_drops: PerCpuMap[ctypes.c_uint32, ctypes.c_uint64]
    tables: TableStore
    # Every store the maps were made from, wrapped above or not (the fragment and ICMP-rate
    # maps, the flat session map beside shards): close() closes them all.
    stores: list[MapStore] = field(default_factory=list)

    def close(self) -> None:
        """Closes the file descriptors these maps own (those opened from pins)."""
        for owned in self.stores:
            if isinstance(owned, KernelMap):
                owned.close()
        for value in [*vars(self).values(), *vars(self.acl).values()]:
            stores = (
                value.stores if isinstance(value, SessionTable) else [getattr(value, "store", None)]
            )
            for store in stores:
                if isinstance(store, KernelMap | ShardedSets):
                    store.close()
        if isinstance(self.tables, KernelTables):
            self.tables.close()

    @classmethod
    def from_stores(
        cls, stores: dict[str, MapStore], tables: TableStore, session_sets: MapStore
    ) -> LbMaps:
        def typed(name: str) -> TypedMap:  # type: ignore[type-arg]
            key, value, _ = abi.LB_MAPS[name]
            return TypedMap(stores[name], key, value)

        def percpu(name: str) -> PerCpuMap:  # type: ignore[type-arg]
            key, value, _ = abi.LB_MAPS[name]
            return PerCpuMap(stores[name], key, value)

        return cls(
            vips=typed("shoal_vips_v1"),
            backends=typed("shoal_backends_v1"),
            sessions=SessionTable(
                TypedMap(session_sets, ctypes.c_uint32, abi.SessionSet),
                stores["shoal_session_geom_v1"],
                typed("shoal_config_v2"),
                stores["shoal_syn_marks_v1"],
            ),
            config=typed("shoal_config_v2"),
            flood=percpu("shoal_flood_v1"),
            counters=percpu("shoal_counters_v2"),
            vip_stats=percpu("shoal_vip_stats_v1"),
            backend_stats=percpu("shoal_backend_stats_v1"),
            nexthops=percpu("shoal_nexthops_v1"),
            vip_filter=typed("shoal_vip_filter_v1"),
            acl=AclTables(
                typed("shoal_acl_ids_v1"),
                typed("shoal_acl_words_v1"),
                typed("shoal_acl4_v1"),
                typed("shoal_acl6_v1"),
            ),
            acl_drops=percpu("shoal_acl_drops_v1"),
            tables=tables,
            stores=list(stores.values()),
        )


def _geometry(geom: MapStore) -> abi.SessionGeom:
    raw = geom.lookup(bytes(4))
    return abi.SessionGeom.from_buffer_copy(raw) if raw else abi.SessionGeom()


def _pinned_classes(pin_dir: Path) -> ClassMaps | None:
    """The Maglev class maps pinned under pin_dir, None when the program predates them."""
    names = [abi.MAGLEV_CLASS_MAP, *abi.MAGLEV_CURRENT_MAPS[1:], *abi.MAGLEV_PREVIOUS_MAPS[1:]]
    if not all((pin_dir / n).exists() for n in names):
        return None
    lib = bpf.lib()
    word, *outers = (
        KernelMap(lib.call("bpf_obj_get", str(pin_dir / n).encode()), own_fd=True) for n in names
    )
    count = len(abi.MAGLEV_CLASS_SIZES)
    return ClassMaps(word, tuple(outers[:count]), tuple(outers[count:]))


def vip_key(address: flowhash.IpAddress, port: int, protocol: str) -> abi.VipKey:
    key = abi.VipKey()
    key.addr[:] = flowhash.addr_words(address)
    key.port = int.from_bytes(port.to_bytes(2, "big"), "little")
    key.proto = PROTO_NUM[protocol]
    key.family = address.version
    return key


def _slot_name(
    names: dict[int, tuple[abi.Backend, int, str]], slot: int, b: abi.Backend
) -> tuple[abi.Backend, int, str]:
    """(entry, VIP id, address) of a backend slot, from the cache unless the slot was written
    anew (a new entry object)."""
    hit = names.get(slot)
    if hit is None or hit[0] is not b:
        hit = (b, int(b.vip_id), str(_address(b.addr, b.family)))
    return hit


def _address(words: Iterable[int], family: int) -> flowhash.IpAddress:
    packed = b"".join(w.to_bytes(4, "little") for w in words)
    return ipaddress.ip_address(packed[:4] if family == 4 else packed)


def _vip_name(kb: bytes) -> str:
    """A VIP's name ("tcp://192.0.2.1:80") from its map key."""
    key = abi.VipKey.from_buffer_copy(kb)
    addr = _address(key.addr, key.family)
    host = f"[{addr}]" if addr.version == 6 else str(addr)
    port = _net_port(key.port)
    return f"{PROTO_NAME.get(key.proto, key.proto)}://{host}:{port or '*'}"


def _vip_address(kb: bytes) -> flowhash.IpAddress:
    key = abi.VipKey.from_buffer_copy(kb)
    return _address(key.addr, key.family)


def _encap_name(flags: int) -> Literal["ipip", "gue", "srv6"]:
    if flags & abi.VIP_F_SRV6:
        return "srv6"
    return "gue" if flags & abi.VIP_F_GUE else "ipip"


def _net_port(port: int) -> int:
    return int.from_bytes(port.to_bytes(2, "little"), "big")


def _before_drains(vip: VipSpec) -> list[tuple[str, int]] | None:
    """For a VIP this node never held: its table's inputs as they were before its healthy
    members were drained (weight 0), the drained ones at the weight most of the others have;
    None when nothing is draining. A node that joins during a drain then knows the drained
    members' slots as the nodes that saw the drain start do (exactly so with equal weights)."""
    draining = [be for be in vip.backends if be.healthy and be.weight == 0]
    if not draining:
        return None
    weights = Counter(be.weight for be in vip.backends if be.healthy and be.weight > 0)
    usual = weights.most_common(1)[0][0] if weights else 1
    return [(str(be.address), (be.weight or usual) if be.healthy else 0) for be in vip.backends]


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


@dataclass(frozen=True)
class SpecChanges:
    """What a caller that keeps its unchanged specs knows about a config against the one
    applied last: `new` holds (in config order) every spec of the config that may not be an
    object applied last time, `old` every applied spec that may be gone; every other spec
    of the config is the very object applied last. Lets an apply skip looking at every VIP
    (Balancer.apply(config, changes)); the set operations then run over these only."""

    new: list[VipSpec]
    old: list[VipSpec]


@dataclass
class ApplyReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # VIP name -> Maglev table digest

    def summary(self) -> str:
        return (
            f"{len(self.added)} VIP(s) added, {len(self.changed)} changed, "
            f"{len(self.removed)} removed"
        )


@dataclass(frozen=True)
class FloodStatus:
    """Flood mode per CPU. `effective` applies the data plane's exit rule at the current time,
    which the data plane itself only evaluates when the next new flow arrives."""

    mode: list[bool]
    effective: list[bool]
    rate: list[int]
    entries: int
    exits: int

    @property
    def active(self) -> bool:
        return any(self.effective)


@dataclass(frozen=True)
class BackendStatus:
    address: str
    weight: int
    state: str  # active, draining or down
    packets: int
    bytes: int


@dataclass(frozen=True)
class VipStatus:
    name: str
    vip_id: int
    packets: int
    bytes: int
    table_size: int  # 0 = no table (no usable backend: new flows are dropped)
    backends: list[BackendStatus]
    acl_drops: int = 0  # packets from clients outside allowed_cidrs


@dataclass(frozen=True)
class FlowTrace:
    flow: str
    vip: str | None
    verdict: str
    backend: str | None = None
    via: str | None = None  # "session" or "maglev"
    hash: int | None = None
    slot: int | None = None
    table_size: int | None = None
    session_backend: str | None = None
    session_usable: bool | None = None
    # Second chance: the previous owner a TCP packet of this flow other than a SYN carries.
    previous: str | None = None


@dataclass
class _Plan:
    config_words: abi.Config
    alloc: Allocator
    vip_entries: dict[bytes, tuple[VipSpec, int, int]] = field(default_factory=dict)
    backend_writes: dict[int, abi.Backend] = field(default_factory=dict)  # before the swap
    late_writes: dict[int, abi.Backend] = field(default_factory=dict)  # losing usability: after
    # Entries rewritten with their VIP's next table generation, once its new table is in.
    gen_writes: dict[int, abi.Backend] = field(default_factory=dict)
    table_gens: dict[int, int] = field(default_factory=dict)  # vip_id -> its new generation
    new_ids: set[int] = field(default_factory=set)
    tables: dict[int, np.ndarray | None] = field(default_factory=dict)  # None = no usable one
    # Second chance on a node that never held the VIP: the table before its drains.
    seeded_previous: dict[int, np.ndarray] = field(default_factory=dict)
    slots_of: dict[int, dict[bytes, int]] = field(default_factory=dict)  # planned VIPs only
    freed_slots: list[int] = field(default_factory=list)
    removed_vips: dict[bytes, int] = field(default_factory=dict)
    new_vip_ids: list[int] = field(default_factory=list)
    touched_vip_ids: set[int] = field(default_factory=set)
    kept: dict[bytes, AppliedVip] = field(default_factory=dict)  # every VIP after the change
    filter_addrs: list[flowhash.IpAddress] | None = None  # None: the VIP set is unchanged
    acl: AclPlan = field(default_factory=AclPlan)
    report: ApplyReport = field(default_factory=ApplyReport)
    spec_keys: dict[int, bytes] | None = None  # None: rebuilt from kept
    seed: bytes | None = None
    backends_total: int = 0
    anyport_total: int = 0


class _OutOfIds(Exception):  # noqa: N818 - internal signal, never leaves apply()
    """The change fits, but only once the ids it frees are free."""


class Balancer:
    """One L4 data plane instance: its maps, and its program when loaded from BPF."""

    def __init__(
        self,
        maps: LbMaps,
        *,
        obj: loader.BpfObject | None = None,
        instance: str = "default",
        max_vips: int = abi.MAX_VIPS,
        max_backends: int = abi.MAX_BACKENDS,
    ) -> None:
        self.maps = maps
        self.obj = obj
        self.instance = instance
        self.max_vips = max_vips
        self.max_backends = max_backends
        self.desired: DataplaneConfig | None = None
        self.pinned = False  # loaded on the instance's pins (attach then checks them)
        self.table_cache = TableCache()
        self._held: Mirror | None = None
        self._applied: dict[bytes, AppliedVip] = {}  # VIP key bytes -> what it was made from
        self._spec_keys: dict[int, bytes] = {}  # id() of an applied spec -> its key bytes
        self._names: dict[bytes, str] = {}  # VIP key bytes -> name (vip_ids)
        self._slot_names: dict[int, tuple[abi.Backend, int, str]] = {}  # (backend_slots)
        # What the last apply left, for an apply that costs what it changes: the seed it
        # used, its report's digests, and its backend and any-port totals.
        self._seed: bytes | None = None
        self._digests: dict[str, str] = {}
        self._backends_total = 0
        self._anyport_total = 0
        self.incremental = True  # False: plan every VIP (tests compare both)

    # ---- lifecycle -------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        instance: str = "default",
        *,
        pin: bool = True,
        session_cache_size: int = abi.DEFAULT_SESSIONS,
        max_vips: int = abi.MAX_VIPS,
        max_backends: int = abi.MAX_BACKENDS,
    ) -> Balancer:
        """Loads the XDP program with its maps (pinned per instance unless pin=False)."""
        sets = sets_for(session_cache_size, bpf.lib().ncpus)
        sharded = sharded_layout()
        sizes = {
            # The layout in use gets the table; the other one entry (bpf/lb/lb_maps.h).
            "shoal_sessions_v2": 1 if sharded else sets,
            abi.SESSIONS_MAP: shards_for(sets) if sharded else 1,
            "shoal_vips_v1": max_vips,
            **{name: max_vips for name in abi.MAGLEV_CURRENT_MAPS},
            **{name: max_vips for name in abi.MAGLEV_PREVIOUS_MAPS},
            abi.MAGLEV_CLASS_MAP: max_vips,
            "shoal_vip_stats_v1": max_vips,
            "shoal_backends_v1": max_backends,
            "shoal_backend_stats_v1": max_backends,
            "shoal_nexthops_v1": max_backends,
            "shoal_vip_filter_v1": abi.VIP_FILTER_WORDS,
            "shoal_acl_ids_v1": max_vips,
            "shoal_acl_words_v1": max_vips,
            "shoal_acl_drops_v1": max_vips,
        }
        pin_dir = loader.PIN_ROOT / instance if pin else None
        # A flat table pinned by an earlier program is moved into the shards after the load.
        flat = pins.take_flat_sessions(pin_dir) if pin_dir and sharded else None
        try:
            obj = loader.BpfObject(
                loader.bpf_object_path("lb"),
                pin_dir,
                sizes,
                rodata={".rodata.layout": int(sharded).to_bytes(4, "little")},
            )
        except BaseException:
            if flat is not None and pin_dir is not None:
                pins.give_back_flat_sessions(pin_dir, flat)
                flat.close()
            raise
        ncpus = bpf.lib().ncpus
        try:
            stores: dict[str, MapStore] = {
                name: KernelMap(obj.map_fd(name), percpu=percpu)
                for name, (_, _, percpu) in abi.LB_MAPS.items()
            }
            tables = KernelTables(
                KernelMap(obj.map_fd("shoal_maglev_v1")),
                KernelMap(obj.map_fd("shoal_maglev_prev_v1")),
                ClassMaps(
                    KernelMap(obj.map_fd(abi.MAGLEV_CLASS_MAP)),
                    tuple(KernelMap(obj.map_fd(n)) for n in abi.MAGLEV_CURRENT_MAPS[1:]),
                    tuple(KernelMap(obj.map_fd(n)) for n in abi.MAGLEV_PREVIOUS_MAPS[1:]),
                ),
            )
            session_sets: MapStore = stores["shoal_sessions_v2"]
            if sharded:
                shards = ShardedSets(KernelMap(obj.map_fd(abi.SESSIONS_MAP)), sets)
                created = shards.ensure()
                if flat is not None and created == shards.shards:
                    pins.carry_flat_sessions(flat, shards)
                session_sets = shards
            tables.settle()  # tables an earlier program left outside their class
            maps = LbMaps.from_stores(stores, tables, session_sets)
            maps.sessions.set_up(ncpus)
            if pin_dir is not None:
                pins.carry_config_v1(pin_dir, maps.config)
                maps.acl.renew_words()
                pins.drop_sessions_v1(pin_dir)
        except BaseException:
            if flat is not None and pin_dir is not None:
                pins.give_back_flat_sessions(pin_dir, flat)
            obj.close()
            raise
        finally:
            if flat is not None:
                flat.close()
        lb = cls(maps, obj=obj, instance=instance, max_vips=max_vips, max_backends=max_backends)
        lb.pinned = pin
        return lb

    @staticmethod
    def adopt(instance: str, ifname: str, *, netns_name: str | None = None) -> pins.MapCheck:
        """Before a load: if a Shoal program on ifname uses maps other than the instance's
        pins (a purge, a bpffs remount, a load that did not reuse them), pins the live ones,
        so the program about to load keeps what traffic uses now. See dataplane/pins.py."""
        with netns.entered(netns_name):
            prog_id = loader.xdp_prog_id(netns.ifindex(ifname))
            return pins.adopt_live_maps(prog_id, loader.PIN_ROOT / instance)

    @classmethod
    def open(cls, instance: str = "default") -> Balancer:
        """Opens a loaded instance's pinned maps, without loading a program (CLI, agents)."""
        pin_dir = loader.PIN_ROOT / instance
        if not (pin_dir / "shoal_config_v2").exists():
            raise DataplaneError(
                f"no data plane instance {instance!r} (nothing pinned under {pin_dir}); "
                "start one with `shoal dataplane attach`"
            )
        lib = bpf.lib()
        stores: dict[str, MapStore] = {}
        for name, (_, _, percpu) in abi.LB_MAPS.items():
            fd = lib.call("bpf_obj_get", str(pin_dir / name).encode())
            stores[name] = KernelMap(fd, percpu=percpu, own_fd=True)
        outer = KernelMap(
            lib.call("bpf_obj_get", str(pin_dir / "shoal_maglev_v1").encode()), own_fd=True
        )
        prev_pin = pin_dir / "shoal_maglev_prev_v1"
        prev = (
            KernelMap(lib.call("bpf_obj_get", str(prev_pin).encode()), own_fd=True)
            if prev_pin.exists()
            else None  # pinned by a program that predates second chance
        )
        classes = _pinned_classes(pin_dir)
        session_sets: MapStore = stores["shoal_sessions_v2"]
        shards_pin = pin_dir / abi.SESSIONS_MAP
        geom = _geometry(stores["shoal_session_geom_v1"])
        if shards_pin.exists() and geom.shard_shift:
            session_sets = ShardedSets(
                KernelMap(lib.call("bpf_obj_get", str(shards_pin).encode()), own_fd=True),
                int(geom.sets) * int(geom.stripes),
            )
        maps = LbMaps.from_stores(stores, KernelTables(outer, prev, classes), session_sets)
        return cls(
            maps,
            instance=instance,
            max_vips=stores["shoal_vips_v1"].max_entries,
            max_backends=stores["shoal_backends_v1"].max_entries,
        )

    @classmethod
    def fake(cls, *, max_vips: int = 64, max_backends: int = 1024, ncpus: int = 2) -> Balancer:
        """An in-memory balancer with the same logic, for tests without root."""
        sizes = {
            "shoal_vips_v1": max_vips,
            "shoal_backends_v1": max_backends,
            "shoal_vip_stats_v1": max_vips,
            "shoal_backend_stats_v1": max_backends,
            "shoal_sessions_v2": sets_for(4096, ncpus),
            "shoal_session_geom_v1": 1,
            "shoal_syn_marks_v1": abi.SYN_MARKS,
            "shoal_config_v2": 1,
            "shoal_flood_v1": 1,
            "shoal_counters_v2": abi.COUNTER_SLOTS,
            "shoal_nexthops_v1": max_backends,
            "shoal_vip_filter_v1": abi.VIP_FILTER_WORDS,
            "shoal_acl_ids_v1": max_vips,
            "shoal_acl_words_v1": max_vips,
            "shoal_acl4_v1": 256,
            "shoal_acl6_v1": 256,
            "shoal_acl_drops_v1": max_vips,
            "shoal_frags_v1": 256,
            "shoal_icmp_rate_v1": 1,
        }
        stores: dict[str, MapStore] = {}
        hashes = (
            "shoal_vips_v1",
            "shoal_acl4_v1",
            "shoal_acl6_v1",
            "shoal_frags_v1",
        )
        for name, (key, value, percpu) in abi.LB_MAPS.items():
            is_array = name not in hashes
            stores[name] = FakeMap(
                ctypes.sizeof(key),
                ctypes.sizeof(value),
                sizes[name],
                percpu=percpu,
                is_array=is_array,
                ncpus=ncpus,
            )
        maps = LbMaps.from_stores(stores, FakeTables(), stores["shoal_sessions_v2"])
        maps.sessions.set_up(ncpus)
        return cls(maps, max_vips=max_vips, max_backends=max_backends)

    @property
    def prog_fd(self) -> int:
        if self.obj is None:
            raise DataplaneError("this balancer has no BPF program (fake)")
        return self.obj.prog_fd(PROG_NAME)

    def close(self) -> None:
        """Closes our handles; the attached program and pinned maps keep working."""
        self.maps.close()
        if self.obj is not None:
            self.obj.close()
            self.obj = None

    def __enter__(self) -> Balancer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def attach(self, ifname: str, *, netns_name: str | None = None, mode: str = "auto") -> str:
        """Attaches (or atomically replaces) the program on ifname; returns the XDP mode.
        A pinned instance then proves the attached program uses exactly its pins."""
        with netns.entered(netns_name):
            ifindex = netns.ifindex(ifname)
            used = loader.attach_xdp(ifindex, self.prog_fd, mode)
            if self.pinned:
                pins.check_attached(loader.xdp_prog_id(ifindex), self.pin_dir(self.instance))
            return used

    @staticmethod
    def detach(ifname: str, *, netns_name: str | None = None) -> bool:
        with netns.entered(netns_name):
            return loader.detach_xdp(netns.ifindex(ifname))

    @staticmethod
    def pin_dir(instance: str) -> Path:
        return loader.PIN_ROOT / instance

    @staticmethod
    def purge(instance: str) -> bool:
        """Unpins an instance's maps (sessions, tables, counters go once no program uses them)."""
        path = loader.PIN_ROOT / instance
        if not path.exists():
            return False
        shutil.rmtree(path)
        with contextlib.suppress(OSError):
            loader.PIN_ROOT.rmdir()  # only when no other instance is left
        return True

    # ---- applying desired state ------------------------------------------------------------

    def apply(self, config: DataplaneConfig, changes: SpecChanges | None = None) -> ApplyReport:
        """Makes the data plane hold exactly `config`. Refuses (ConfigError) before writing
        anything when it cannot fit. changes: the caller's word on what differs from the
        config applied last (SpecChanges), for an apply that costs what changed."""
        try:
            plan = self._plan(config, changes)
        except _OutOfIds:
            # Allocation runs ahead of freeing (a swap at full): first take out what goes,
            # keeping what stays as it is, then apply the whole change. The totals were
            # checked, so the second step fits.
            self._execute(self._plan(self._shrunk_to(config)))
            plan = self._plan(config)
        self._execute(plan)
        self.desired = config
        return plan.report

    def holds(self, vip: VipSpec) -> bool:
        """Whether the maps hold a VIP with this (address, port, protocol)."""
        return self._key_bytes(vip) in self._mirror().vips

    def _key_bytes(self, vip: VipSpec) -> bytes:
        """The VIP map key of a spec; specs applied last time answer from memory."""
        kb = self._spec_keys.get(id(vip))
        if kb is not None and self._applied[kb].spec is vip:
            return kb
        return bytes(vip_key(*vip.key))

    def _shrunk_to(self, config: DataplaneConfig) -> DataplaneConfig:
        """The VIPs held now that `config` keeps, each with only the backends it keeps."""
        wanted = {v.key: v for v in config.vips}
        held = [a.spec for a in self._applied.values()] or self.current_vips()
        vips = []
        for spec in held:
            target = wanted.get(spec.key)
            if target is None:
                continue
            keep = {b.address for b in target.backends}
            backends = [b for b in spec.backends if b.address in keep]
            vips.append(spec.model_copy(update={"backends": backends}))
        return DataplaneConfig(settings=config.settings, vips=vips)

    # Incremental changes: each one is a whole-config apply of the last config with one change,
    # so the same validation and ordering rules hold.

    def current_vips(self) -> list[VipSpec]:
        """The VIPs the maps hold, read back (for a process that did not make them)."""
        by_vip: dict[int, list[BackendSpec]] = {}
        for b in self.backends().values():
            by_vip.setdefault(b.vip_id, []).append(
                BackendSpec(
                    address=_address(b.addr, b.family),
                    weight=int(b.weight),
                    healthy=bool(b.flags & abi.BE_F_USABLE),
                )
            )
        out = []
        acls = self.maps.acl.read()
        for kb, st in self._current_vips().items():
            key = abi.VipKey.from_buffer_copy(kb)
            table = self.maps.tables.read(st.vip_id)
            allowed = (
                list(acls.get(self.maps.acl.active_id(st.vip_id), set()))
                if st.flags & abi.VIP_F_ACL
                else None
            )
            size = len(table) if table is not None else maglev.DEFAULT_TABLE_SIZE
            out.append(
                VipSpec(
                    address=_address(key.addr, key.family),
                    port=_net_port(key.port),
                    protocol=PROTO_NAME[key.proto],
                    any_port=bool(st.flags & abi.VIP_F_ANY_PORT),
                    encap=_encap_name(st.flags),
                    hash="source_ip" if st.flags & abi.VIP_F_SRC_HASH else "5tuple",
                    table_size=size,
                    allowed_cidrs=allowed,
                    backends=by_vip.get(st.vip_id, []),
                )
            )
        return out

    def _base(self) -> DataplaneConfig:
        if self.desired is None:
            raise DataplaneError(
                "apply a full configuration first: the node settings (seed) are not known here"
            )
        return self.desired

    def upsert_vip(self, vip: VipSpec) -> ApplyReport:
        """Adds the VIP, or replaces the one with the same (address, port, protocol)."""
        base = self._base()
        vips = [v for v in base.vips if v.key != vip.key] + [vip]
        return self.apply(DataplaneConfig(settings=base.settings, vips=vips))

    def remove_vip(self, address: str, port: int, protocol: str) -> ApplyReport:
        base = self._base()
        key = (ipaddress.ip_address(address), port, protocol)
        if not any(v.key == key for v in base.vips):
            raise ConfigError(f"no VIP {protocol} {address} port {port}")
        return self.apply(
            DataplaneConfig(settings=base.settings, vips=[v for v in base.vips if v.key != key])
        )

    def set_backend(
        self, address: str, port: int, protocol: str, backend: BackendSpec
    ) -> ApplyReport:
        """Adds a backend to a VIP or changes its weight / health (weight 0 drains it)."""
        vip = self._vip(address, port, protocol)
        backends = [b for b in vip.backends if b.address != backend.address] + [backend]
        return self.upsert_vip(vip.model_copy(update={"backends": backends}))

    def remove_backend(self, address: str, port: int, protocol: str, backend: str) -> ApplyReport:
        vip = self._vip(address, port, protocol)
        target = ipaddress.ip_address(backend)
        if not any(b.address == target for b in vip.backends):
            raise ConfigError(f"{vip.name} has no backend {backend}")
        backends = [b for b in vip.backends if b.address != target]
        return self.upsert_vip(vip.model_copy(update={"backends": backends}))

    def _vip(self, address: str, port: int, protocol: str) -> VipSpec:
        key = (ipaddress.ip_address(address), port, protocol)
        for vip in self._base().vips:
            if vip.key == key:
                return vip
        raise ConfigError(f"no VIP {protocol} {address} port {port}")

    def _current_vips(self) -> dict[bytes, VipState]:
        return {bytes(k): VipState(v.vip_id, v.flags) for k, v in self.maps.vips.items()}

    def _current_backends(self) -> dict[int, abi.Backend]:
        store = self.maps.backends.store
        if isinstance(store, KernelMap):
            raw = store.lookup_all_array()
            arr = np.frombuffer(raw, dtype=np.dtype(abi.Backend))
            out: dict[int, abi.Backend] = {}
            for i in np.nonzero((arr["family"] != 0) | (arr["gen"] != 0))[0]:
                out[int(i)] = abi.Backend.from_buffer_copy(arr[i].tobytes())
            return out
        return {int(k.value): v for k, v in self.maps.backends.items() if v.family or v.gen}

    def _settings_words(self, s: Settings, anyport: int) -> abi.Config:
        cfg = abi.Config()
        cfg.hash_seed = flowhash.hash_seed_from(s.seed)
        cfg.flags = (
            (abi.CFG_F_FIB if s.fib_lookup else 0)
            | (abi.CFG_F_GW_MAC if s.gateway_mac else 0)
            | (0 if s.second_chance else abi.CFG_F_NO_CHANCE)
            | (abi.CFG_F_FIB_PER_FLOW if s.fib_per_flow else 0)
        )
        cfg.hz = clock.hz()
        cfg.udp_timeout = clock.to_jiffies(s.udp_timeout)
        cfg.tcp_timeout = clock.to_jiffies(s.tcp_timeout)
        cfg.tcp_closing_timeout = clock.to_jiffies(s.tcp_closing_timeout)
        cfg.flood_window = clock.to_jiffies(s.flood.window)
        cfg.flood_enter_rate = s.flood.enter_rate
        cfg.flood_exit_rate = s.flood.exit_rate
        cfg.flood_hold = clock.to_jiffies(s.flood.hold_down)
        cfg.nh_max_age = clock.to_jiffies(NEXTHOP_MAX_AGE)
        net4 = s.encap_source_v4
        cfg.encap_src4 = int.from_bytes(net4.network_address.packed, "little")
        cfg.encap_src4_mask = int.from_bytes(net4.hostmask.packed, "little")
        cfg.encap_src6[:] = flowhash.addr_words(s.encap_source_v6.network_address)
        if s.gateway_mac:
            cfg.gw_mac[:] = list(_mac(s.gateway_mac))
        cfg.gue_port = _net_port(s.gue_port)
        cfg.mtu = s.mtu
        cfg.icmp_rate = s.icmp_too_big_rate
        cfg.anyport_vips = anyport
        return cfg

    def _mirror(self) -> Mirror:
        """The maps' content as last written, read from the maps the first time."""
        if self._held is None:
            acl_ids = {}
            vips = self._current_vips()
            for st in vips.values():
                if st.flags & abi.VIP_F_ACL:
                    acl_ids[st.vip_id] = self.maps.acl.active_id(st.vip_id)
            self._held = Mirror.build(
                vips,
                self._current_backends(),
                self.maps.acl.read(),
                acl_ids,
                self.max_vips,
                self.max_backends,
            )
        return self._held

    def _plan(self, config: DataplaneConfig, changes: SpecChanges | None = None) -> _Plan:
        """What to write to go from the mirror to `config`. VIPs whose canonical inputs are
        those applied cost a digest (or nothing, for the very same spec object); the others
        are planned as before. Raises _OutOfIds when ids freed by this very change would be
        needed (the caller frees them first)."""
        if len(config.vips) > self.max_vips:
            raise ConfigError(
                f"data plane full: {len(config.vips)} VIPs, this data plane holds {self.max_vips}"
            )
        seed = config.settings.seed.encode()
        if (
            self.incremental
            and self._held is not None
            and self._seed == seed
            and self.desired is not None
            and self.desired.settings == config.settings
        ):
            return self._plan_changes(config, seed, changes)
        need = sum(len(v.backends) for v in config.vips)
        if need > self.max_backends:
            raise ConfigError(
                f"data plane full: {need} backends, this data plane holds {self.max_backends}"
            )
        mirror = self._mirror()
        alloc = Allocator(mirror)
        plan = _Plan(self._settings_words(config.settings, 0), alloc)
        plan.seed = seed
        plan.backends_total = need
        report = plan.report
        wanted_keys: set[bytes] = set()
        for vip in config.vips:
            kb = self._key_bytes(vip)
            wanted_keys.add(kb)
            prev = self._applied.get(kb)
            held = mirror.vips.get(kb)
            if prev is not None and held is not None and prev.spec is vip and self._seed == seed:
                digest = prev.digest
            else:
                digest = spec_digest(vip, seed)
            if prev is not None and held is not None and prev.digest == digest:
                plan.kept[kb] = AppliedVip(vip, digest, prev.table_digest)
                if prev.table_digest is not None:
                    report.digests[vip.name] = prev.table_digest
                continue
            self._plan_vip(plan, mirror, kb, vip, digest, seed)

        for kb, st in mirror.vips.items():
            if kb not in wanted_keys:
                self._plan_removal(plan, mirror, kb, st)
        plan.anyport_total = sum(1 for v in config.vips if v.any_port)
        return self._plan_finish(plan, mirror, config)

    def _plan_removal(self, plan: _Plan, mirror: Mirror, kb: bytes, st: VipState) -> None:
        plan.removed_vips[kb] = st.vip_id
        plan.touched_vip_ids.add(st.vip_id)
        for slot in mirror.slots_of.get(st.vip_id, {}).values():
            plan.freed_slots.append(slot)
        key = abi.VipKey.from_buffer_copy(kb)
        plan.report.removed.append(
            VipSpec(
                address=_address(key.addr, key.family),
                port=_net_port(key.port),
                protocol=PROTO_NAME[key.proto],
                any_port=key.port == 0,
                table_size=3,
            ).name
        )

    def _plan_finish(self, plan: _Plan, mirror: Mirror, config: DataplaneConfig) -> _Plan:
        for slot in plan.freed_slots:
            freed = abi.Backend()
            freed.gen = mirror.backends[slot].gen
            plan.late_writes[slot] = freed
        self._plan_acl(plan, mirror)
        plan.config_words.anyport_vips = plan.anyport_total
        if plan.new_vip_ids or plan.removed_vips:
            plan.filter_addrs = [v.address for v in config.vips]
        return plan

    def _plan_changes(
        self, config: DataplaneConfig, seed: bytes, changes: SpecChanges | None = None
    ) -> _Plan:
        """_plan for a config whose specs are mostly the very objects applied last time (the
        agent keeps an unchanged load balancer's specs): those are settled by identity with
        set operations, without a per-VIP step; only the new and the dropped specs are
        planned. With changes, the set operations run over those specs only, not every
        VIP's. Gives what _plan gives (the tests compare both)."""
        applied_ids = self._spec_keys.keys()
        applied = self._applied
        if changes is not None:
            new_ids = set(map(id, changes.new))
            if len(new_ids) != len(changes.new):
                raise ConfigError("duplicate VIP in the configuration")
            fresh = [v for v in changes.new if id(v) not in applied_ids]
            fresh_ids: Iterable[int] = [id(v) for v in fresh]
            gone_ids: Iterable[int] = {
                i for i in map(id, changes.old) if i in applied_ids and i not in new_ids
            }
        else:
            vips = config.vips
            by_id = dict(zip(map(id, vips), vips, strict=True))
            fresh_ids = by_id.keys() - applied_ids
            gone_ids = applied_ids - by_id.keys()
            if len(by_id) != len(vips):
                raise ConfigError("duplicate VIP in the configuration")
            if fresh_ids:
                pos = dict(zip(map(id, vips), range(len(vips)), strict=True))
                fresh = [by_id[i] for i in sorted(fresh_ids, key=pos.__getitem__)]
            else:
                fresh = []
        gone = [applied[self._spec_keys[i]].spec for i in gone_ids]
        need = (
            self._backends_total
            + sum(len(v.backends) for v in fresh)
            - sum(len(v.backends) for v in gone)
        )
        if need > self.max_backends:
            raise ConfigError(
                f"data plane full: {need} backends, this data plane holds {self.max_backends}"
            )
        mirror = self._mirror()
        plan = _Plan(self._settings_words(config.settings, 0), Allocator(mirror))
        plan.seed = seed
        plan.backends_total = need
        plan.anyport_total = (
            self._anyport_total
            + sum(1 for v in fresh if v.any_port)
            - sum(1 for v in gone if v.any_port)
        )
        report = plan.report
        report.digests = dict(self._digests)
        kept = plan.kept = dict(applied)
        spec_keys = plan.spec_keys = dict(self._spec_keys)
        gone_keys: dict[bytes, str] = {}
        for i in gone_ids:
            kb = spec_keys.pop(i)
            name = applied[kb].spec.name
            gone_keys[kb] = name
            report.digests.pop(name, None)
            del kept[kb]
        fresh_keys: set[bytes] = set()
        for vip in fresh:
            kb = bytes(vip_key(*vip.key))
            if kb in fresh_keys or (kb in kept and kb not in gone_keys):
                raise ConfigError(f"duplicate VIP {vip.name}")
            fresh_keys.add(kb)
            spec_keys[id(vip)] = kb
            report.digests.pop(vip.name, None)
            prev = applied.get(kb)
            held = mirror.vips.get(kb)
            digest = spec_digest(vip, seed)
            if prev is not None and held is not None and prev.digest == digest:
                kept[kb] = AppliedVip(vip, digest, prev.table_digest)
                if prev.table_digest is not None:
                    report.digests[vip.name] = prev.table_digest
                continue
            self._plan_vip(plan, mirror, kb, vip, digest, seed)
        for kb in gone_keys:
            st = mirror.vips.get(kb)
            if kb not in fresh_keys and st is not None:
                self._plan_removal(plan, mirror, kb, st)
        return self._plan_finish(plan, mirror, config)

    def _plan_vip(
        self, plan: _Plan, mirror: Mirror, kb: bytes, vip: VipSpec, digest: bytes, seed: bytes
    ) -> None:
        report = plan.report
        flags = (
            (abi.VIP_F_ANY_PORT if vip.any_port else 0)
            | (abi.VIP_F_GUE if vip.encap == "gue" else 0)
            | (abi.VIP_F_SRV6 if vip.encap == "srv6" else 0)
            | (abi.VIP_F_SRC_HASH if vip.hash == "source_ip" else 0)
            | (abi.VIP_F_ACL if vip.allowed_cidrs else 0)
        )
        held = mirror.vips.get(kb)
        if held is not None:
            vip_id = held.vip_id
            if held.flags != flags:
                report.changed.append(vip.name)
        else:
            got = plan.alloc.vip_id()
            if got is None:
                raise _OutOfIds(f"no free VIP id at {vip.name}")
            vip_id = got
            plan.new_vip_ids.append(vip_id)
            report.added.append(vip.name)
        plan.vip_entries[kb] = (vip, vip_id, flags)
        plan.touched_vip_ids.add(vip_id)
        old_slots = mirror.slots_of.get(vip_id, {}) if held is not None else {}
        new_slots: dict[bytes, int] = {}
        ids = []
        for be in vip.backends:
            entry = self._backend_entry(be, vip_id, flags)
            addr = bytes(entry.addr)
            slot = old_slots.get(addr)
            if slot is not None:
                old = mirror.backends[slot]
                entry.gen = old.gen
                entry.table_gen = old.table_gen
                if bytes(old) != bytes(entry):
                    lost = old.flags & abi.BE_F_USABLE and not entry.flags & abi.BE_F_USABLE
                    (plan.late_writes if lost else plan.backend_writes)[slot] = entry
                    if vip.name not in report.added + report.changed:
                        report.changed.append(vip.name)
            else:
                got = plan.alloc.slot()
                if got is None:
                    raise _OutOfIds(f"no free backend slot at {vip.name}")
                slot = got
                old_gen = mirror.backends[slot].gen if slot in mirror.backends else 0
                entry.gen = (old_gen + 1) & 0xFFFFFFFF or 1
                entry.table_gen = mirror.table_gens.get(vip_id, 0)
                plan.backend_writes[slot] = entry
                plan.new_ids.add(slot)
                if vip.name not in report.added + report.changed:
                    report.changed.append(vip.name)
            new_slots[addr] = slot
            ids.append(slot)
        for addr, slot in old_slots.items():
            if addr not in new_slots:
                plan.freed_slots.append(slot)
                if vip.name not in report.added + report.changed:
                    report.changed.append(vip.name)
        plan.slots_of[vip_id] = new_slots
        pairs = [(str(be.address), be.weight if be.healthy else 0) for be in vip.backends]
        picked, table_digest = self.table_cache.get(pairs, vip.table_size, seed)
        if table_digest is not None:
            report.digests[vip.name] = table_digest
        plan.tables[vip_id] = None if (picked < 0).all() else np.asarray(ids, "<u4")[picked]
        before = _before_drains(vip) if held is None else None
        if before is not None and plan.tables[vip_id] is not None:
            prev, _ = self.table_cache.get(before, vip.table_size, seed)
            if not (prev < 0).any():
                plan.seeded_previous[vip_id] = np.asarray(ids, "<u4")[prev]
        plan.kept[kb] = AppliedVip(vip, digest, table_digest)

    def _plan_acl(self, plan: _Plan, mirror: Mirror) -> None:
        """Plans the lists of the VIPs this change touches; the others' entries only count
        against the tries' capacity."""
        touched = plan.touched_vip_ids
        ids_touched = {a for v in touched for a in acl_ids_of(v)}
        current = {a: nets for a, nets in mirror.acl.items() if a in ids_touched}
        wanted = {
            vip_id: list(spec.allowed_cidrs)
            for spec, vip_id, _ in plan.vip_entries.values()
            if spec.allowed_cidrs
        }
        active = {v: a for v, a in mirror.acl_active.items() if v in touched}
        capacity = self.maps.acl.capacity()
        acl = plan_acl(current, active, wanted, capacity)
        for version in (4, 6):
            others = sum(
                1
                for a, nets in mirror.acl.items()
                if a not in ids_touched
                for n in nets
                if n.version == version
            )
            existing = sum(1 for nets in current.values() for n in nets if n.version == version)
            peak = (
                existing
                + sum(1 for _, n in acl.writes if n.version == version)
                - sum(1 for _, n in acl.pre_deletes if n.version == version)
            )
            if others + peak > capacity:
                raise ConfigError(
                    f"data plane full: allowed_cidrs: {others + peak} IPv{version} prefixes "
                    f"over every VIP during the change, this data plane holds {capacity}"
                )
        for spec, vip_id, _ in plan.vip_entries.values():
            if vip_id in acl.changed and spec.name not in plan.report.added + plan.report.changed:
                plan.report.changed.append(spec.name)
        plan.acl = acl

    @staticmethod
    def _backend_entry(be: BackendSpec, vip_id: int, vip_flags: int) -> abi.Backend:
        entry = abi.Backend()
        entry.addr[:] = flowhash.addr_words(be.address)
        entry.family = be.address.version
        entry.flags = (abi.BE_F_USABLE if be.healthy else 0) | (
            abi.BE_F_DRAINING if be.weight == 0 else 0
        )
        entry.vip_id = vip_id
        entry.vip_flags = vip_flags
        entry.weight = min(be.weight, 0xFFFF)  # shown only: the program does not read it
        return entry

    def _execute(self, plan: _Plan) -> None:
        """Writes the plan, then brings the mirror in step; a failed write drops the mirror
        (the next apply reads the maps again)."""
        mirror = self._mirror()
        try:
            self._write(plan, mirror)
        except BaseException:
            self._held = None
            self._applied, self._spec_keys = {}, {}
            self._seed = None
            raise
        plan.alloc.commit(mirror)
        for kb, (_, vip_id, flags) in plan.vip_entries.items():
            mirror.vips[kb] = VipState(vip_id, flags)
        for slot, entry in {**plan.backend_writes, **plan.late_writes, **plan.gen_writes}.items():
            mirror.backends[slot] = entry
        for vip_id, slots in plan.slots_of.items():
            mirror.slots_of[vip_id] = slots
        mirror.table_gens.update(plan.table_gens)
        for kb, vip_id in plan.removed_vips.items():
            del mirror.vips[kb]
            mirror.slots_of.pop(vip_id, None)
            mirror.table_hashes.pop(vip_id, None)
            mirror.table_gens.pop(vip_id, None)
            mirror.acl_active.pop(vip_id, None)
        for acl_id, net in [*plan.acl.pre_deletes, *plan.acl.post_deletes]:
            nets = mirror.acl.get(acl_id)
            if nets is not None:
                nets.discard(net)
                if not nets:
                    del mirror.acl[acl_id]
        for acl_id, net in plan.acl.writes:
            mirror.acl.setdefault(acl_id, set()).add(net)
        mirror.acl_active.update(plan.acl.ids)
        for spec, vip_id, _ in plan.vip_entries.values():
            if not spec.allowed_cidrs:
                mirror.acl_active.pop(vip_id, None)
        mirror.release(list(plan.removed_vips.values()), plan.freed_slots)
        self._applied = plan.kept
        self._spec_keys = (
            plan.spec_keys
            if plan.spec_keys is not None
            else {id(a.spec): kb for kb, a in plan.kept.items()}
        )
        self._digests = plan.report.digests
        self._backends_total = plan.backends_total
        self._anyport_total = plan.anyport_total
        self._seed = plan.seed

    def _write(self, plan: _Plan, mirror: Mirror) -> None:
        m = self.maps
        current_cfg = m.config.get(0)
        # A new epoch makes every CPU look its next hops up again (backends may have moved).
        plan.config_words.nh_epoch = ((current_cfg.nh_epoch if current_cfg else 0) + 1) or 1
        early_cfg = abi.Config.from_buffer_copy(bytes(plan.config_words))
        if current_cfg is not None:
            # Any-port lookups must be on before a new any-port VIP appears.
            early_cfg.anyport_vips = max(current_cfg.anyport_vips, plan.config_words.anyport_vips)
        m.config.set(0, early_cfg)
        # A VIP's new list is whole before its packets can read it (flag or switched id).
        m.acl.delete(plan.acl.pre_deletes)
        m.acl.write(plan.acl.writes)
        m.acl.switch(plan.acl.ids)
        for slot in plan.new_ids:
            m.backend_stats.set_all(slot, abi.Traffic())
            m.nexthops.set_all(slot, abi.Nexthop())
        for slot, entry in plan.backend_writes.items():
            m.backends.set(slot, entry)
        for vip_id in plan.new_vip_ids:
            m.vip_stats.set_all(vip_id, abi.Traffic())
            m.acl_drops.set_all(vip_id, ctypes.c_uint64(0))
        swaps: list[Swap] = []  # written together: one RCU wait per batch, not per VIP
        for vip_id, ids in plan.tables.items():
            if ids is None:
                m.tables.remove(vip_id)
                mirror.table_hashes.pop(vip_id, None)
                continue
            digest = ids_hash(ids)
            known = mirror.table_hashes.get(vip_id)
            if known is None and vip_id not in plan.new_vip_ids:
                # Not written by this process (a restart): the maps may hold this very table.
                # Swapping it in again would make it its own previous table, and a drain in
                # progress would lose its second chance.
                current = m.tables.read(vip_id)
                if current is not None and ids_hash(current) == digest:
                    mirror.table_hashes[vip_id] = known = digest
            if known != digest:
                swaps.append((vip_id, ids, plan.seeded_previous.get(vip_id)))
                mirror.table_hashes[vip_id] = digest
                self._plan_gen_bump(plan, mirror, vip_id)
        m.tables.swap_many(swaps)
        old_addrs = [_vip_address(kb) for kb in plan.removed_vips]
        if plan.filter_addrs is not None:
            # The pre-filter must let a new VIP's packets in before its entry exists, and
            # keep letting a removed VIP's packets in until its entry is gone.
            self._write_filter(vipfilter.filter_words(plan.filter_addrs + old_addrs))
        for kb, (_, vip_id, flags) in plan.vip_entries.items():
            held = mirror.vips.get(kb)
            if held is None or held != VipState(vip_id, flags):
                val = abi.VipVal(vip_id=vip_id, flags=flags)
                m.vips.set(abi.VipKey.from_buffer_copy(kb), val)
        for kb, vip_id in plan.removed_vips.items():
            m.vips.delete(abi.VipKey.from_buffer_copy(kb))
            m.tables.remove(vip_id)
            mirror.table_hashes.pop(vip_id, None)
        for slot, entry in plan.late_writes.items():
            m.backends.set(slot, entry)
        # After the new tables: an entry written meanwhile under the old generation names the
        # new table's pick and is only checked more than it needs (lb/session.h).
        for slot, entry in plan.gen_writes.items():
            m.backends.set(slot, entry)
        if plan.filter_addrs is not None:
            self._write_filter(vipfilter.filter_words(plan.filter_addrs))
        m.acl.delete(plan.acl.post_deletes)
        m.config.set(0, plan.config_words)

    @staticmethod
    def _plan_gen_bump(plan: _Plan, mirror: Mirror, vip_id: int) -> None:
        """Every backend entry of the VIP with the next table generation: session entries
        written under the old table are no longer taken for the new table's pick."""
        slots = plan.slots_of.get(vip_id) or mirror.slots_of.get(vip_id, {})
        gen = (mirror.table_gens.get(vip_id, 0) + 1) & abi.FLOW_GEN_BITS
        plan.table_gens[vip_id] = gen
        for slot in slots.values():
            base = plan.late_writes.get(slot) or plan.backend_writes.get(slot)
            entry = abi.Backend.from_buffer_copy(bytes(base or mirror.backends[slot]))
            entry.table_gen = gen
            plan.gen_writes[slot] = entry

    def _write_filter(self, words: np.ndarray) -> None:
        """Writes the filter words that differ from what the map holds."""
        store = self.maps.vip_filter.store
        if isinstance(store, KernelMap):
            current = np.frombuffer(store.lookup_all_array(), dtype="<u8")
        else:
            current = np.array([v.value for _, v in self.maps.vip_filter.items()], dtype="<u8")
        changed = np.nonzero(current != words)[0].astype("<u4")
        if len(changed):
            store.update_many(changed.tobytes(), words[changed].tobytes(), len(changed))

    # ---- reading state -------------------------------------------------------------------

    def vips(self) -> dict[str, VipState]:
        return {_vip_name(kb): st for kb, st in self._current_vips().items()}

    def backends(self) -> dict[int, abi.Backend]:
        """Allocated backend slots by id."""
        return {i: b for i, b in self._current_backends().items() if b.family}

    def counters(self) -> dict[str, int]:
        out = {}
        for c in abi.Counter:
            out[c.name.lower()] = sum(v.value for v in self.maps.counters.get(c))
        return out

    def vip_traffic(self, vip_id: int) -> tuple[int, int]:
        per_cpu = self.maps.vip_stats.get(vip_id)
        return sum(t.packets for t in per_cpu), sum(t.bytes for t in per_cpu)

    def vip_ids(self) -> dict[str, int]:
        """VIP name -> VIP id of what the maps hold, from what this process wrote (no map
        reads: metrics ask at every scrape)."""
        names = self._names
        out = {}
        for kb, st in self._written_vips():
            name = names.get(kb)
            if name is None:
                name = names[kb] = _vip_name(kb)
            out[name] = st.vip_id
        if len(names) > 2 * len(out) + 64:  # forget removed VIPs' names now and then
            self._names = {kb: n for kb, n in names.items() if n in out}
        return out

    def _written_vips(self) -> list[tuple[bytes, VipState]]:
        # Scrapes run on another thread than apply(): a copy taken in one step (list() of
        # a dict's items holds the GIL throughout), and no mirror built from here.
        held = self._held
        return list((held.vips if held is not None else self._current_vips()).items())

    def backend_slots(self) -> list[tuple[int, int, str]]:
        """(slot, VIP id, backend address) per allocated backend slot, from what this process
        wrote."""
        held = self._held
        backends = held.backends if held is not None else self._current_backends()
        out = []
        names, kept = self._slot_names, {}
        for slot, b in list(backends.items()):
            if b.family:
                kept[slot] = hit = _slot_name(names, slot, b)
                out.append((slot, hit[1], hit[2]))
        self._slot_names = kept
        return out

    def rows_in_use(self) -> tuple[int | None, int | None]:
        """(VIP ids, backend slots) below which every one this process wrote lies; None
        when it wrote none yet (then every row may be in use)."""
        held = self._held
        if held is None:
            return None, None
        return held.rows_in_use(self.max_vips, self.max_backends)

    def backend_slots_of(self, slots: Iterable[int]) -> list[tuple[int, int, str]]:
        """(slot, VIP id, backend address) of the given slots that hold a backend, from what
        this process wrote: O(len(slots)), for a report naming only the busy few of 100,000."""
        held = self._held
        backends = held.backends if held is not None else self._current_backends()
        out, names = [], self._slot_names  # the names backend_slots keeps, not rebuilt
        for slot in slots:
            b = backends.get(slot)
            if b is None or not b.family:
                continue
            names[slot] = hit = _slot_name(names, slot, b)
            out.append((slot, hit[1], hit[2]))
        return out

    def counter_arrays(self) -> tuple[npt.NDArray[np.uint64], ...]:
        """(packets and bytes per VIP id, ACL drops per VIP id, packets and bytes per backend
        slot), each summed over the CPUs and read in one batch."""
        return (
            self.maps.vip_stats.sums(),
            self.maps.acl_drops.sums(),
            self.maps.backend_stats.sums(),
        )

    def status(self) -> list[VipStatus]:
        """Every VIP with its backends, their state and traffic."""
        by_vip: dict[int, list[BackendStatus]] = {}
        for slot, b in sorted(self.backends().items()):
            per_cpu = self.maps.backend_stats.get(slot)
            state = (
                "down"
                if not b.flags & abi.BE_F_USABLE
                else "draining"
                if b.flags & abi.BE_F_DRAINING
                else "active"
            )
            by_vip.setdefault(b.vip_id, []).append(
                BackendStatus(
                    str(_address(b.addr, b.family)),
                    int(b.weight),
                    state,
                    sum(t.packets for t in per_cpu),
                    sum(t.bytes for t in per_cpu),
                )
            )
        out = []
        for name, st in sorted(self.vips().items()):
            packets, nbytes = self.vip_traffic(st.vip_id)
            table = self.maps.tables.read(st.vip_id)
            out.append(
                VipStatus(
                    name,
                    st.vip_id,
                    packets,
                    nbytes,
                    0 if table is None else len(table),
                    by_vip.get(st.vip_id, []),
                    self.acl_drops(st.vip_id),
                )
            )
        return out

    def acl_drops(self, vip_id: int) -> int:
        """Packets of this VIP dropped because their source is outside allowed_cidrs."""
        return sum(v.value for v in self.maps.acl_drops.get(vip_id))

    def acl_allows(self, vip_id: int, flags: int, src: flowhash.IpAddress) -> bool:
        """The data plane's ACL decision for a client of this VIP, from the maps."""
        if not flags & abi.VIP_F_ACL:
            return True
        nets = self.maps.acl.read().get(self.maps.acl.active_id(vip_id), set())
        return any(src in net for net in nets if net.version == src.version)

    def backend_traffic(self) -> dict[str, tuple[int, int]]:
        """(packets, bytes) per backend address, over every VIP it serves."""
        out: dict[str, tuple[int, int]] = {}
        for slot, b in self.backends().items():
            per_cpu = self.maps.backend_stats.get(slot)
            name = str(_address(b.addr, b.family))
            p, y = out.get(name, (0, 0))
            out[name] = (p + sum(t.packets for t in per_cpu), y + sum(t.bytes for t in per_cpu))
        return out

    def backend_stats(self) -> Iterator[tuple[int, str, int, int]]:
        """(VIP id, backend address, packets, bytes) per allocated backend slot, without
        reading tables (metrics scrape this)."""
        for slot, b in sorted(self.backends().items()):
            per_cpu = self.maps.backend_stats.get(slot)
            yield (
                int(b.vip_id),
                str(_address(b.addr, b.family)),
                sum(t.packets for t in per_cpu),
                sum(t.bytes for t in per_cpu),
            )

    def flood_status(self, now: int | None = None) -> FloodStatus:
        """Flood mode per CPU; now is in jiffies (default: the kernel's current value)."""
        cfg = self.maps.config.get(0) or abi.Config()
        now = clock.jiffies_now() if now is None else now
        states = self.maps.flood.get(0)
        effective = []
        for st in states:
            eff = bool(st.mode)
            elapsed = now - st.window_start
            if eff and now - st.last_flow >= cfg.flood_hold:
                eff = False  # quiet for the whole hold-down
            elif eff and cfg.flood_window and elapsed >= cfg.flood_window:
                rate = (st.window_flows + 1) * cfg.hz // max(elapsed, 1)
                calm = st.calm_since or st.window_start
                if rate < cfg.flood_exit_rate and now - calm >= cfg.flood_hold:
                    eff = False
            effective.append(eff)
        return FloodStatus(
            mode=[bool(s.mode) for s in states],
            effective=effective,
            rate=[int(s.last_rate) for s in states],
            entries=sum(s.entries for s in states),
            exits=sum(s.exits for s in states),
        )

    def refresh_nexthops(self) -> int:
        """Makes every CPU look next hops up again (call on neighbour or route changes, and
        periodically); returns the new epoch."""
        cfg = self.maps.config.get(0)
        if cfg is None or not cfg.nh_epoch:
            return 0
        cfg.nh_epoch = (cfg.nh_epoch + 1) & 0xFFFFFFFF or 1
        self.maps.config.set(0, cfg)
        return int(cfg.nh_epoch)

    def session(self, key: abi.FlowKey) -> abi.FlowVal | None:
        return self.maps.sessions.get(key)

    def trace(self, src: str, sport: int, dst: str, dport: int, protocol: str) -> FlowTrace:
        """Which backend this flow reaches, and why, computed from the maps without a packet."""
        key = flowhash.flow_key(src, dst, sport, dport, protocol)
        flow = f"{protocol} {src}:{sport} -> {dst}:{dport}"
        dst_ip = ipaddress.ip_address(dst)
        vip = self.maps.vips.get(vip_key(dst_ip, dport, protocol))
        if vip is None:
            any_vip = self.maps.vips.get(vip_key(dst_ip, 0, protocol))
            vip = any_vip if any_vip and any_vip.flags & abi.VIP_F_ANY_PORT else None
        if vip is None:
            return FlowTrace(flow, None, "pass: not a VIP")
        vip_name = next((n for n, st in self.vips().items() if st.vip_id == vip.vip_id), None)
        if not self.acl_allows(vip.vip_id, vip.flags, ipaddress.ip_address(src)):
            return FlowTrace(flow, vip_name, "drop: source not in allowed_cidrs")
        cfg = self.maps.config.get(0) or abi.Config()
        session = self.maps.sessions.get(key)
        session_backend, usable = None, None
        if session is not None:
            b = self.maps.backends.get(session.backend_id)
            usable = bool(b and b.gen == session.backend_gen and b.flags & abi.BE_F_USABLE)
            if b is not None and b.family:
                session_backend = str(_address(b.addr, b.family))
            alive = session_alive(PROTO_NUM[protocol], session, cfg, clock.jiffies_now())
            if usable and b is not None:
                mark = self.maps.sessions.syn_mark(key)
                usable = not session_superseded(PROTO_NUM[protocol], session, b, mark)
            if usable and alive:
                return FlowTrace(
                    flow,
                    vip_name,
                    "forward",
                    session_backend,
                    "session",
                    session_backend=session_backend,
                    session_usable=True,
                )
        h = flowhash.flow_hash(key, cfg.hash_seed, bool(vip.flags & abi.VIP_F_SRC_HASH))
        table = self.maps.tables.read(vip.vip_id)
        if table is None or not len(table):
            return FlowTrace(
                flow,
                vip_name,
                "drop: no usable backend",
                hash=h,
                session_backend=session_backend,
                session_usable=usable,
            )
        slot = h % len(table)
        b = self.maps.backends.get(int(table[slot]))
        backend = str(_address(b.addr, b.family)) if b is not None and b.family else None
        previous = None
        if protocol == "tcp" and b is not None and not cfg.flags & abi.CFG_F_NO_CHANCE:
            previous = self._previous_owner(vip.vip_id, h, int(table[slot]), b)
        return FlowTrace(
            flow,
            vip_name,
            "forward",
            backend,
            "maglev",
            h,
            slot,
            len(table),
            session_backend,
            usable,
            previous,
        )

    def _previous_owner(
        self, vip_id: int, h: int, current_id: int, current: abi.Backend
    ) -> str | None:
        """What bpf/lb/chance.h puts in the tunnel for this hash, if anything."""
        prev_table = self.maps.tables.read_previous(vip_id)
        if prev_table is None or not len(prev_table):
            return None
        prev_id = int(prev_table[h % len(prev_table)])
        p = self.maps.backends.get(prev_id)
        if (
            prev_id == current_id
            or p is None
            or not p.flags & abi.BE_F_USABLE
            or p.vip_id != vip_id
            or p.family != current.family
        ):
            return None
        return str(_address(p.addr, p.family))
