"""The session cache as Python sees it: a set-associative table with one stripe of sets per
CPU (bpf/lb/session.h), in shards of shoal_session_shards_v1, and its geometry in
shoal_session_geom_v1.

A flow's entry lives in the stripe of the CPU that served it, so a reader (flow trace, tests,
the CLI) looks in the flow's set of every stripe. A write from here follows the data plane's
rule for choosing a way (the flow's own, else an empty or expired one, else the least recently
touched), so a test can fill a set and see what the program would evict."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shoal.dataplane import abi, clock, features, flowhash
from shoal.dataplane import libbpf as bpf
from shoal.dataplane.maps import KernelMap, MapStore, TypedMap
from shoal.errors import BpfError, DataplaneError

__all__ = [
    "Placed",
    "SessionTable",
    "ShardedSets",
    "alive",
    "mark_index",
    "set_index",
    "sets_for",
    "sharded_layout",
    "shards_for",
    "superseded",
    "tag_of",
]

WAYS = abi.SESSION_WAYS
_WAY_SIZE = ctypes.sizeof(abi.SessionWay)
_SET_SIZE = ctypes.sizeof(abi.SessionSet)
_TAGS_SIZE = abi.SessionSet.way.offset


def sets_for(entries: int, stripes: int) -> int:
    """Sets in the whole table for `entries` sessions over `stripes` CPUs (each stripe the
    same number of sets, at least one)."""
    per_stripe = max(1, -(-entries // (WAYS * stripes)))
    return per_stripe * stripes


def sharded_layout(release: str | None = None) -> bool:
    """Whether this kernel gets the sharded table (shoal_session_shards_v1). It needs one RCU wait
    for a batch of inner maps (Linux 6.8); before that every stored shard waits a grace period
    (~10 ms: minutes for a table of thousands of shards), so older kernels keep every set in one
    array (shoal_sessions_v2), which is vmalloc memory."""
    return features.kernel_version(release) >= (6, 8)


def shards_for(sets: int) -> int:
    """Shards (entries of the outer map) that hold `sets` sets."""
    return max(1, -(-sets >> abi.SESSION_SHARD_SHIFT))


def set_index(key: abi.FlowKey, geom: abi.SessionGeom, cpu: int) -> int:
    """The set of `key` in CPU `cpu`'s stripe, exactly as session_set() computes it."""
    h = flowhash.flow_hash(key, geom.seed)
    sets = int(geom.sets)
    return cpu * sets + ((h * sets) >> 32)


def tag_of(key: abi.FlowKey, geom: abi.SessionGeom) -> int:
    """The way's tag session_set() gives `key` (never 0, which marks an empty way)."""
    return flowhash.flow_hash(key, geom.seed) | 1


def mark_index(tag: int) -> int:
    """The SYN-marks bucket of a tag, as syn_mark_of() computes it."""
    return (tag * abi.SYN_MARKS) >> 32


def _this_cpu() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    cpu = int(libc.sched_getcpu())
    return cpu if cpu >= 0 else 0


class ShardedSets:
    """The `sets` sets of shoal_session_shards_v1 as one array (a MapStore): set i is entry i & 127
    of shard i >> 7. Shards are opened by id when used; a few stay open."""

    key_size = 4
    value_size = _SET_SIZE
    percpu = False
    is_array = True
    shard_shift = abi.SESSION_SHARD_SHIFT
    _KEEP_OPEN = 64

    def __init__(self, outer: KernelMap, sets: int) -> None:
        if shards_for(sets) > outer.max_entries:
            raise DataplaneError(f"{sets} session sets do not fit {outer.max_entries} shards")
        self.outer = outer
        self.shards = shards_for(sets)
        self.max_entries = sets
        self._open: dict[int, KernelMap] = {}
        self._lib = bpf.lib()

    def ensure(self) -> int:
        """Creates the shards the outer map lacks, all stored in one batch (one RCU wait on
        Linux >= 6.8; older kernels fall back to one update per shard). Returns how many."""
        missing = [i for i in range(self.shards) if self._shard_id(i) is None]
        fds = []
        try:
            for _ in missing:
                fds.append(
                    self._lib.call(
                        "bpf_map_create",
                        bpf.BPF_MAP_TYPE_ARRAY,
                        b"shoal_sessions",
                        4,
                        _SET_SIZE,
                        1 << self.shard_shift,
                        None,
                    )
                )
            keys = np.array(missing, dtype="<u4").tobytes()
            values = np.array(fds, dtype="<u4").tobytes()
            if missing:
                try:
                    self.outer.update_many(keys, values, len(missing))
                except BpfError:
                    for i, fd in zip(missing, fds, strict=True):
                        self.outer.update(i.to_bytes(4, "little"), fd.to_bytes(4, "little"))
        finally:
            for fd in fds:
                os.close(fd)  # the outer map holds its own reference
        return len(missing)

    def _shard_id(self, shard: int) -> int | None:
        raw = self.outer.lookup(shard.to_bytes(4, "little"))
        return int.from_bytes(raw, "little") if raw else None

    def _shard(self, shard: int) -> KernelMap:
        held = self._open.get(shard)
        if held is not None:
            return held
        map_id = self._shard_id(shard)
        if map_id is None:
            raise DataplaneError(f"session shard {shard} is missing (the table is not set up)")
        if len(self._open) >= self._KEEP_OPEN:
            self._open.pop(next(iter(self._open))).close()
        opened = KernelMap(self._lib.call("bpf_map_get_fd_by_id", map_id), own_fd=True)
        self._open[shard] = opened
        return opened

    def _where(self, key: bytes) -> tuple[KernelMap, bytes]:
        idx = int.from_bytes(key, "little")
        if not 0 <= idx < self.max_entries:
            raise DataplaneError(f"session set {idx} is outside the table (0..{self.max_entries})")
        inner = idx & ((1 << self.shard_shift) - 1)
        return self._shard(idx >> self.shard_shift), inner.to_bytes(4, "little")

    def lookup(self, key: bytes) -> bytes | None:
        shard, inner = self._where(key)
        return shard.lookup(inner)

    def update(self, key: bytes, value: bytes, flags: int = bpf.BPF_ANY) -> None:
        shard, inner = self._where(key)
        shard.update(inner, value, flags)

    def delete(self, key: bytes) -> bool:
        raise DataplaneError("session sets are array entries: write an empty set instead")

    def iter_keys(self) -> Iterator[bytes]:
        for i in range(self.max_entries):
            yield i.to_bytes(4, "little")

    def update_many(self, keys: bytes, values: bytes, count: int) -> None:
        for i in range(count):
            self.update(keys[4 * i : 4 * i + 4], values[_SET_SIZE * i : _SET_SIZE * (i + 1)])

    def lookup_all_array(self, limit: int | None = None) -> bytes:
        """Every set in index order (limit: the first `limit`), one batch read per shard."""
        total = self.max_entries if limit is None else max(0, min(limit, self.max_entries))
        per = 1 << self.shard_shift
        parts = []
        for shard in range(-(-total // per)):
            map_id = self._shard_id(shard)
            want = min(per, total - shard * per)
            if map_id is None:
                parts.append(bytes(_SET_SIZE * want))
                continue
            held = KernelMap(self._lib.call("bpf_map_get_fd_by_id", map_id), own_fd=True)
            try:
                parts.append(held.lookup_all_array(want))
            finally:
                held.close()
        return b"".join(parts)

    def write_all(self, raw: bytes) -> None:
        """Writes sets 0.. from raw (whole sets in index order), one batch per shard."""
        per = 1 << self.shard_shift
        count = min(len(raw) // _SET_SIZE, self.max_entries)
        for shard in range(-(-count // per)):
            first = shard * per
            n = min(per, count - first)
            keys = np.arange(n, dtype="<u4").tobytes()
            values = raw[first * _SET_SIZE : (first + n) * _SET_SIZE]
            self._shard(shard).update_many(keys, values, n)

    def close(self) -> None:
        """Closes the open shards and the outer map (if its fd is owned)."""
        for held in self._open.values():
            held.close()
        self._open.clear()
        self.outer.close()


@dataclass(frozen=True)
class Placed:
    """A flow's entry and the CPU stripe that holds it."""

    cpu: int
    val: abi.FlowVal
    admitted: int = 0  # the ACL epoch the way records (abi.FlowKey.admitted), 0 for none


class SessionTable:
    """Reads and writes shoal_sessions_v2 by flow key."""

    def __init__(
        self,
        sets: TypedMap[ctypes.c_uint32, abi.SessionSet],
        geom: MapStore,
        config: TypedMap[ctypes.c_uint32, abi.Config],
        marks: MapStore,
    ) -> None:
        self.sets = sets
        self.geom_map = TypedMap(geom, ctypes.c_uint32, abi.SessionGeom)
        self.config = config
        self.marks = TypedMap(marks, ctypes.c_uint32, abi.SynMark)
        # The maps LbMaps.close() closes.
        self.stores = (sets.store, geom, marks)

    # ---- SYN marks (shoal_abi.h) -------------------------------------------------------------

    def syn_mark(self, key: abi.FlowKey) -> abi.SynMark | None:
        """The mark of the flow's last SYN, if its bucket still holds it."""
        tag = tag_of(key, self.geom())
        mark = self.marks.get(mark_index(tag))
        return mark if mark is not None and mark.tag == tag else None

    def forget_syn(self, key: abi.FlowKey) -> None:
        """Clears the flow's SYN mark (a test that ages an entry ages its SYN with it)."""
        tag = tag_of(key, self.geom())
        if self.syn_mark(key) is not None:
            self.marks.set(mark_index(tag), abi.SynMark())

    # ---- geometry --------------------------------------------------------------------------

    def geom(self) -> abi.SessionGeom:
        return self.geom_map.get(0) or abi.SessionGeom()

    def set_up(self, stripes: int) -> abi.SessionGeom:
        """Writes the geometry for the map's size, keeping a seed already there (a pinned
        table reused by a reload keeps its entries where they are); a new table gets a random
        seed, so no client can aim its flows at another flow's set."""
        g = self.geom()
        sets = self.sets.store.max_entries // max(stripes, 1)
        shift = self.sets.store.shard_shift if isinstance(self.sets.store, ShardedSets) else 0
        if g.sets == sets and g.stripes == stripes and g.shard_shift == shift and g.seed:
            return g
        if not g.seed:
            g.seed = int.from_bytes(os.urandom(4), "little") or 1
        g.sets, g.stripes, g.shard_shift = sets, stripes, shift
        self.geom_map.set(0, g)
        return g

    @property
    def capacity(self) -> int:
        """Entries over all stripes."""
        return self.sets.store.max_entries * WAYS

    @property
    def per_cpu(self) -> int:
        """Entries one CPU's stripe holds."""
        return int(self.geom().sets) * WAYS

    # ---- by flow ---------------------------------------------------------------------------

    def _set(self, idx: int) -> abi.SessionSet:
        return self.sets.get(idx) or abi.SessionSet()

    @staticmethod
    def _way_of(s: abi.SessionSet, key: abi.FlowKey, tag: int) -> int | None:
        """The way holding key, as the program matches it: tag, then the 5-tuple (the
        stored key's admitted bytes aside)."""
        want = bytes(key)[: abi.FLOW_KEY_MATCHED]
        for w, way in enumerate(s.way):
            if s.tag[w] == tag and bytes(way.key)[: abi.FLOW_KEY_MATCHED] == want:
                return w
        return None

    def find(self, key: abi.FlowKey) -> list[Placed]:
        """The flow's entries, one per CPU stripe that holds one."""
        g = self.geom()
        tag = tag_of(key, g)
        found = []
        for cpu in range(g.stripes):
            s = self._set(set_index(key, g, cpu))
            w = self._way_of(s, key, tag)
            if w is not None:
                way = s.way[w]
                val = abi.FlowVal.from_buffer_copy(bytes(way.val))
                found.append(Placed(cpu, val, int.from_bytes(bytes(way.key.admitted), "little")))
        return found

    def get(self, key: abi.FlowKey) -> abi.FlowVal | None:
        """The flow's entry in whichever stripe holds it (the most recently touched if
        several do: the flow moved between CPUs)."""
        found = self.find(key)
        if not found:
            return None
        return max(found, key=lambda p: p.val.touched & abi.FLOW_TIME).val

    def set(self, key: abi.FlowKey, val: abi.FlowVal, cpu: int | None = None) -> int:
        """Writes the flow's entry in `cpu`'s stripe; None: in every stripe that holds it, or
        else in this process's current CPU's. Returns the way written (of the last stripe)."""
        g = self.geom()
        if not g.stripes:
            raise ValueError("the session table has no geometry (not set up)")
        if cpu is None:
            cpus = [p.cpu for p in self.find(key)] or [_this_cpu() % g.stripes]
        else:
            if not 0 <= cpu < g.stripes:
                raise ValueError(f"cpu {cpu} has no session stripe (0..{g.stripes - 1})")
            cpus = [cpu]
        way = 0
        for c in cpus:
            idx = set_index(key, g, c)
            s = self._set(idx)
            way = self._victim(s, key, tag_of(key, g))
            s.tag[way] = tag_of(key, g)
            s.way[way].key = key
            s.way[way].val = val
            self.sets.set(idx, s)
        return way

    def delete(self, key: abi.FlowKey) -> bool:
        """Empties the flow's way in every stripe; False when no stripe held it."""
        g = self.geom()
        tag = tag_of(key, g)
        hit = False
        for cpu in range(g.stripes):
            idx = set_index(key, g, cpu)
            s = self._set(idx)
            w = self._way_of(s, key, tag)
            if w is not None:
                s.tag[w] = 0
                s.way[w] = abi.SessionWay()
                self.sets.set(idx, s)
                hit = True
        return hit

    def _victim(self, s: abi.SessionSet, key: abi.FlowKey, tag: int) -> int:
        """session_insert()'s choice of way."""
        own = self._way_of(s, key, tag)
        if own is not None:
            return own
        cfg = self.config.get(0) or abi.Config()
        now = clock.jiffies_now()
        free = oldest = None
        oldest_idle = -1
        for w, way in enumerate(s.way):
            touched = int(way.val.touched)
            idle = now - (touched & abi.FLOW_TIME)
            empty = not s.tag[w] or not touched
            if free is None and (empty or not alive(way.key.proto, way.val, cfg, now)):
                free = w
            if idle > oldest_idle:
                oldest, oldest_idle = w, idle
        return free if free is not None else (oldest or 0)

    # ---- whole table -----------------------------------------------------------------------

    def _raw(self) -> bytes:
        store = self.sets.store
        if isinstance(store, KernelMap | ShardedSets):
            return store.lookup_all_array()
        return b"".join(
            store.lookup(i.to_bytes(4, "little")) or bytes(store.value_size)
            for i in range(store.max_entries)
        )

    def _held(self) -> npt.NDArray[np.uint8]:
        """The ways in use (tag not 0) over the whole table, one row each."""
        sets = np.frombuffer(self._raw(), dtype=np.uint8).reshape(-1, _SET_SIZE)
        tags = sets[:, :_TAGS_SIZE].view("<u4").reshape(-1)
        held: npt.NDArray[np.uint8] = sets[:, _TAGS_SIZE:].reshape(-1, _WAY_SIZE)[tags != 0]
        return held

    def __len__(self) -> int:
        """Occupied ways over all stripes (one batch read of the whole table)."""
        return len(self._held())

    def items(self) -> Iterator[tuple[abi.FlowKey, abi.FlowVal]]:
        """Every entry held, stripe by stripe (a flow on two CPUs appears twice). Empty ways
        are skipped in numpy, so a mostly empty table of millions of ways reads quickly."""
        for row in self._held():
            way = abi.SessionWay.from_buffer_copy(row.tobytes())
            yield way.key, way.val


def alive(proto: int, val: abi.FlowVal, cfg: abi.Config, now: int) -> bool:
    """The data plane's expiry rule (session_timeout): idle for at most the entry's timeout,
    udp_timeout, tcp_timeout or, once the flow sent a FIN or an RST, tcp_closing_timeout."""
    touched = int(val.touched)
    if proto == 17:
        timeout = cfg.udp_timeout
    else:
        timeout = cfg.tcp_closing_timeout if touched & abi.FLOW_CLOSING else cfg.tcp_timeout
    return not timeout or now - (touched & abi.FLOW_TIME) <= timeout


def superseded(
    proto: int, val: abi.FlowVal, backend: abi.Backend, mark: abi.SynMark | None
) -> bool:
    """Whether session_lookup() takes this entry for an older connection's of its 5-tuple: a
    TCP entry written under another table generation than its backend's, with a SYN of the
    flow marked after it was last touched."""
    if proto != 6 or mark is None:
        return False
    touched = int(val.touched)
    gen = (touched >> abi.FLOW_GEN_SHIFT) & abi.FLOW_GEN_BITS
    if gen == int(backend.table_gen) & abi.FLOW_GEN_BITS:
        return False
    delta = (int(mark.time) - (touched & abi.FLOW_TIME)) & 0xFFFFFFFF
    return 0 < delta < 1 << 31
