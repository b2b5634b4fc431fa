"""The session cache as Python sees it: shoal_sessions_v2, a set-associative table with one
stripe of sets per CPU (bpf/lb/session.h), and its geometry in shoal_session_geom_v1.

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

from shoal.dataplane import abi, clock, flowhash
from shoal.dataplane.maps import KernelMap, MapStore, TypedMap

__all__ = [
    "Placed",
    "SessionTable",
    "alive",
    "mark_index",
    "set_index",
    "sets_for",
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


@dataclass(frozen=True)
class Placed:
    """A flow's entry and the CPU stripe that holds it."""

    cpu: int
    val: abi.FlowVal


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
        if g.sets == sets and g.stripes == stripes and g.seed:
            return g
        if not g.seed:
            g.seed = int.from_bytes(os.urandom(4), "little") or 1
        g.sets, g.stripes = sets, stripes
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
        """The way holding key, as the program matches it: tag, then the whole key."""
        want = bytes(key)
        for w, way in enumerate(s.way):
            if s.tag[w] == tag and bytes(way.key) == want:
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
                found.append(Placed(cpu, abi.FlowVal.from_buffer_copy(bytes(s.way[w].val))))
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
        if isinstance(store, KernelMap):
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
