"""Per-VIP Maglev tables in the data plane. A table is a whole inner map: slot 0 holds its
size M, slots 1..M the backend ids. Swapping the inner map in the outer ARRAY_OF_MAPS is one
atomic pointer store, so a packet sees either the old table or the new one, never a mix.

Tables of a class size (abi.MAGLEV_CLASS_SIZES) live in their class's outer maps, whose inner
maps have exactly that size, so the verifier inlines the data plane's lookups; the others in
class 0's. One word per VIP (shoal_mclass_v1) names the classes of its current and previous
tables. A table enters its class's map before the word names the class and leaves the old
class's map after: whichever word a packet reads, the maps it names hold whole tables.

The table a swap replaces moves to the VIP's slot of the previous map of its class first
(second chance, bpf/lb/chance.h): the data plane may send a flow's packets there too, so the
old table is whole when it moves, and for an instant both maps hold it (no previous owner
then, never a wrong one)."""

from __future__ import annotations

import ctypes
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from shoal.dataplane import abi
from shoal.dataplane import libbpf as bpf
from shoal.dataplane.maps import KernelMap
from shoal.errors import BpfError

__all__ = ["SWAP_BATCH", "ClassMaps", "FakeTables", "KernelTables", "Swap", "TableStore"]

Ids = npt.NDArray[np.uint32]


# (VIP id, its new table, the previous table to give it when it has none now: a VIP this
# node starts serving mid-drain)
Swap = tuple[int, Ids, Ids | None]
# Inner maps held open at once by swap_many (file descriptors).
SWAP_BATCH = 256
_CLASS_MASK = 0xFF


class TableStore(Protocol):
    def swap(self, vip_id: int, ids: Ids) -> None: ...
    def swap_many(self, swaps: list[Swap]) -> None: ...
    def remove(self, vip_id: int) -> None: ...
    def read(self, vip_id: int) -> Ids | None: ...
    def read_previous(self, vip_id: int) -> Ids | None: ...
    def set_previous(self, vip_id: int, ids: Ids) -> None: ...


def _with_header(ids: Ids) -> Ids:
    return np.concatenate([np.array([len(ids)], dtype="<u4"), ids.astype("<u4")])


@dataclass(frozen=True)
class ClassMaps:
    """The outer maps of classes 1.. (abi.MAGLEV_CURRENT_MAPS[1:], MAGLEV_PREVIOUS_MAPS[1:])
    and the class word map."""

    word: KernelMap
    current: tuple[KernelMap, ...]
    previous: tuple[KernelMap, ...]


def table_class(size: int) -> int:
    """The class of a table of `size` slots: 0 unless it is a class size."""
    try:
        return abi.MAGLEV_CLASS_SIZES.index(size) + 1
    except ValueError:
        return 0


def _key(vip_id: int) -> bytes:
    return vip_id.to_bytes(4, "little")


class KernelTables:
    """Tables as inner maps of the outer map of their class: class 0 is shoal_maglev_v1 (the
    ones they replaced in shoal_maglev_prev_v1, absent when the program predates it: no
    second chance then); classes 1.. only when the program has them (`classes`)."""

    def __init__(
        self, outer: KernelMap, prev: KernelMap | None = None, classes: ClassMaps | None = None
    ) -> None:
        self.outer = outer
        self.prev = prev
        self.classes = classes
        self._lib = bpf.lib()

    def close(self) -> None:
        """Closes the fds these maps own (those opened from pins)."""
        for outer in self.outer_maps():
            outer.close()
        if self.classes is not None:
            self.classes.word.close()

    def outer_maps(self) -> list[KernelMap]:
        """Every outer map, current and previous, of every class."""
        maps = [self.outer] + ([self.prev] if self.prev is not None else [])
        if self.classes is not None:
            maps += [*self.classes.current, *self.classes.previous]
        return maps

    def _class_of(self, size: int) -> int:
        return table_class(size) if self.classes is not None else 0

    def _current_map(self, cls: int) -> KernelMap:
        return self.outer if cls == 0 or self.classes is None else self.classes.current[cls - 1]

    def _previous_map(self, cls: int) -> KernelMap | None:
        if cls == 0 or self.classes is None:
            return self.prev
        return self.classes.previous[cls - 1]

    def _words(self, vip_id: int) -> tuple[int, int]:
        """The classes of the VIP's current and previous tables."""
        if self.classes is None:
            return 0, 0
        raw = self.classes.word.lookup(_key(vip_id))
        word = int.from_bytes(raw[:4], "little") if raw is not None else 0
        return word & _CLASS_MASK, (word >> abi.MCLASS_PREV_SHIFT) & _CLASS_MASK

    def _set_words(self, words: list[tuple[bytes, int]]) -> None:
        if self.classes is None or not words:
            return
        keys = b"".join(k for k, _ in words)
        values = b"".join(w.to_bytes(4, "little") for _, w in words)
        self.classes.word.update_many(keys, values, len(words))

    def set_previous(self, vip_id: int, ids: Ids) -> None:
        """A previous table this node never had current (a VIP it starts serving mid-drain)."""
        current, old = self._words(vip_id)
        cls = self._class_of(len(ids))
        target = self._previous_map(cls)
        if target is None:
            return
        self._store(target, vip_id, ids)
        if cls != old:
            self._set_words([(_key(vip_id), current | cls << abi.MCLASS_PREV_SHIFT)])
            stale = self._previous_map(old)
            if stale is not None and stale.lookup(_key(vip_id)):
                self._bury([(old, True, _key(vip_id))])

    def swap(self, vip_id: int, ids: Ids) -> None:
        self.swap_many([(vip_id, ids, None)])

    def _store(self, outer: KernelMap, vip_id: int, ids: Ids) -> None:
        fd = self._filled(ids)
        try:
            # The outer map takes the inner map's fd; from here on the kernel holds it.
            outer.update(_key(vip_id), fd.to_bytes(4, "little"))
        finally:
            os.close(fd)

    def _filled(self, ids: Ids) -> int:
        """A new inner map holding the table; the caller closes its fd."""
        return self._inner(_with_header(ids), self._class_of(len(ids)))

    def _tombstone(self, cls: int) -> int:
        """An inner map of class cls that holds no table (size 0 in slot 0, every slot 0): it
        replaces a table the class word no longer names. Deleting the entry instead would
        wait for an RCU grace period per entry (~15 ms here; no batch delete for arrays of
        maps), and an upgrade moves every VIP's table; a batch update waits once."""
        size = abi.MAGLEV_CLASS_SIZES[cls - 1] if cls else 1
        return self._inner(np.zeros(1 + size, dtype="<u4"), cls)

    def _inner(self, values: Ids, cls: int) -> int:
        """A class table's inner map must match its class's template exactly, so only class
        0's have BPF_F_INNER_MAP; the caller closes the fd."""
        flags = 0 if cls else bpf.BPF_F_INNER_MAP
        create = bpf.opts(bpf.MapCreateOpts, map_flags=flags)
        fd = self._lib.call(
            "bpf_map_create",
            bpf.BPF_MAP_TYPE_ARRAY,
            b"shoal_maglev",
            4,
            4,
            len(values),
            ctypes.byref(create),
        )
        try:
            inner = KernelMap(fd)
            keys = np.arange(len(values), dtype="<u4")
            inner.update_many(keys.tobytes(), values.tobytes(), len(values))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def swap_many(self, swaps: list[Swap]) -> None:
        """swap() of many VIPs (with set_previous() first where one is given and the VIP has
        no table), in batches. Every update of a map-in-map from user space waits for an RCU
        grace period (~9 ms here): one per update made a node's first 10,000 VIPs wait
        ~90 s; since Linux 6.8 a batch update waits once per map. Older kernels wait per
        element."""
        for start in range(0, len(swaps), SWAP_BATCH):
            self._swap_batch(swaps[start : start + SWAP_BATCH])

    def _swap_batch(self, swaps: list[Swap]) -> None:
        opened: list[int] = []
        try:
            prev: dict[int, list[tuple[bytes, int]]] = defaultdict(list)
            new: dict[int, list[tuple[bytes, int]]] = defaultdict(list)
            # Words that keep the current class flip before the new tables (they only name
            # the previous table's class, which holds it by then); the others after.
            early: list[tuple[bytes, int]] = []
            late: list[tuple[bytes, int]] = []
            stale: list[tuple[int, bool, bytes]] = []  # (class, previous?, key) to bury
            for vip_id, ids, seeded in swaps:
                key = _key(vip_id)
                current, old_prev = self._words(vip_id)
                previous = self._current_fd(self._current_map(current), key)
                had_current = previous is not None
                prev_class = current
                if previous is not None:
                    opened.append(previous)
                elif seeded is not None and self.prev is not None:
                    previous = self._filled(seeded)
                    opened.append(previous)
                    prev_class = self._class_of(len(seeded))
                if previous is not None and self.prev is not None:
                    prev[prev_class].append((key, previous))
                else:
                    prev_class = old_prev
                cls = self._class_of(len(ids))
                fd = self._filled(ids)
                opened.append(fd)
                new[cls].append((key, fd))
                if (cls, prev_class) != (current, old_prev):
                    word = (key, cls | prev_class << abi.MCLASS_PREV_SHIFT)
                    (early if cls == current else late).append(word)
                if cls != current and had_current:
                    stale.append((current, False, key))
                old_map = self._previous_map(old_prev)
                if prev_class != old_prev and old_map is not None and old_map.lookup(key):
                    stale.append((old_prev, True, key))
            # A packet must never see the new table with a previous table other than the one
            # it replaces (the flows placed with that one would lose their second chance):
            # the replaced tables are whole in the previous maps, and named by the word, before
            # a new table is visible; every table is in its class's map before the word names
            # the class. A VIP keeping its current class has its new table stored in place,
            # so its word (naming only a new previous class) flips first.
            for cls, entries in prev.items():
                target = self._previous_map(cls)
                if target is not None:
                    _update_fds(target, entries)
            self._set_words(early)
            for cls, entries in new.items():
                _update_fds(self._current_map(cls), entries)
            self._set_words(late)
            self._bury(stale)
        finally:
            for fd in opened:
                os.close(fd)

    def _bury(self, stale: list[tuple[int, bool, bytes]]) -> None:
        """Replaces the tables of (class, previous?, key) with their class's tombstone, one
        batch per map, after the words have stopped naming them."""
        by_map: dict[tuple[int, bool], list[bytes]] = defaultdict(list)
        for cls, previous, key in stale:
            by_map[(cls, previous)].append(key)
        for (cls, previous), keys in by_map.items():
            outer = self._previous_map(cls) if previous else self._current_map(cls)
            if outer is None:
                continue
            fd = self._tombstone(cls)
            try:
                _update_fds(outer, [(key, fd) for key in keys])
            finally:
                os.close(fd)

    def settle(self) -> int:
        """Moves the current tables of a class size that a program before table classes left
        in class 0 into their class (an upgrade: the restart swaps nothing, so they would
        stay on the slower path until their VIP changes). Each is whole in its class before
        the word names it; previous tables stay where they are. Returns how many moved."""
        if self.classes is None:
            return 0
        moves: list[Swap] = []
        for vip_id in range(self.outer.max_entries):
            if self._words(vip_id)[0] != 0:
                continue
            ids = self._read(self.outer, vip_id)
            if ids is not None and table_class(len(ids)):
                moves.append((vip_id, ids, None))
        for start in range(0, len(moves), SWAP_BATCH):
            self._move_batch(moves[start : start + SWAP_BATCH])
        return len(moves)

    def _move_batch(self, moves: list[Swap]) -> None:
        assert self.classes is not None
        opened: list[int] = []
        try:
            new: dict[int, list[tuple[bytes, int]]] = defaultdict(list)
            words: list[tuple[bytes, int]] = []
            for vip_id, ids, _ in moves:
                key = _key(vip_id)
                fd = self._filled(ids)
                opened.append(fd)
                cls = table_class(len(ids))
                new[cls].append((key, fd))
                words.append((key, cls | self._words(vip_id)[1] << abi.MCLASS_PREV_SHIFT))
            for cls, entries in new.items():
                _update_fds(self._current_map(cls), entries)
            self._set_words(words)
            self._bury([(0, False, _key(vip_id)) for vip_id, _, _ in moves])
        finally:
            for fd in opened:
                os.close(fd)

    def _current_fd(self, outer: KernelMap, key: bytes) -> int | None:
        """An fd of the table the VIP has in outer (the caller closes it), or None."""
        raw = outer.lookup(key)
        if raw is None:
            return None
        fd: int = self._lib.call("bpf_map_get_fd_by_id", int.from_bytes(raw[:4], "little"))
        size = KernelMap(fd).lookup(bytes(4))
        if size is None or not int.from_bytes(size[:4], "little"):
            os.close(fd)  # a tombstone: no table, so no previous table to keep either
            return None
        return fd

    def remove(self, vip_id: int) -> None:
        """The VIP has no table (no usable backend, or the VIP is gone): nothing to send a
        flow to, neither now nor as a previous owner."""
        key = _key(vip_id)
        current, previous = self._words(vip_id)
        self._current_map(current).delete(key)
        prev = self._previous_map(previous)
        if prev is not None:
            prev.delete(key)

    def read(self, vip_id: int) -> Ids | None:
        return self._read(self._current_map(self._words(vip_id)[0]), vip_id)

    def read_previous(self, vip_id: int) -> Ids | None:
        prev = self._previous_map(self._words(vip_id)[1])
        return None if prev is None else self._read(prev, vip_id)

    def _read(self, outer: KernelMap, vip_id: int) -> Ids | None:
        raw = outer.lookup(_key(vip_id))
        if raw is None:
            return None
        map_id = int.from_bytes(raw[:4], "little")  # user space reads inner maps back as ids
        fd = self._lib.call("bpf_map_get_fd_by_id", map_id)
        inner = KernelMap(fd, own_fd=True)
        try:
            values = np.frombuffer(inner.lookup_all_array(), dtype="<u4")
        finally:
            inner.close()
        if not values[0]:
            return None  # a tombstone (_tombstone)
        return values[1 : 1 + int(values[0])].copy()


def _update_fds(outer: KernelMap, entries: list[tuple[bytes, int]]) -> None:
    keys = b"".join(k for k, _ in entries)
    values = b"".join(fd.to_bytes(4, "little") for _, fd in entries)
    try:
        outer.update_many(keys, values, len(entries))
    except BpfError:  # a kernel without batch updates of map-in-maps: one at a time
        for key, fd in entries:
            outer.update(key, fd.to_bytes(4, "little"))


class FakeTables:
    """Tables in a dict, for tests without BPF."""

    def __init__(self) -> None:
        self.tables: dict[int, Ids] = {}
        self.previous: dict[int, Ids] = {}
        self.swaps = 0

    def swap(self, vip_id: int, ids: Ids) -> None:
        if vip_id in self.tables:
            self.previous[vip_id] = self.tables[vip_id]
        self.tables[vip_id] = ids.astype("<u4").copy()
        self.swaps += 1

    def swap_many(self, swaps: list[Swap]) -> None:
        for vip_id, ids, seeded in swaps:
            if seeded is not None and vip_id not in self.tables:
                self.set_previous(vip_id, seeded)
            self.swap(vip_id, ids)

    def remove(self, vip_id: int) -> None:
        self.tables.pop(vip_id, None)
        self.previous.pop(vip_id, None)

    def read(self, vip_id: int) -> Ids | None:
        table = self.tables.get(vip_id)
        return None if table is None else table.copy()

    def read_previous(self, vip_id: int) -> Ids | None:
        table = self.previous.get(vip_id)
        return None if table is None else table.copy()

    def set_previous(self, vip_id: int, ids: Ids) -> None:
        self.previous[vip_id] = ids.astype("<u4").copy()
