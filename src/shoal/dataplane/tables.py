"""Per-VIP Maglev tables in the data plane. A table is a whole inner map: slot 0 holds its
size M, slots 1..M the backend ids. Swapping the inner map in the outer ARRAY_OF_MAPS is one
atomic pointer store, so a packet sees either the old table or the new one, never a mix.

The table a swap replaces moves to the VIP's slot of shoal_maglev_prev_v1 first (second
chance, bpf/lb/chance.h): the data plane may send a flow's packets there too, so the old
table is whole when it moves, and for an instant both maps hold it (no previous owner then,
never a wrong one)."""

from __future__ import annotations

import ctypes
import os
from typing import Protocol

import numpy as np
import numpy.typing as npt

from shoal.dataplane import libbpf as bpf
from shoal.dataplane.maps import KernelMap
from shoal.errors import BpfError

__all__ = ["SWAP_BATCH", "FakeTables", "KernelTables", "Swap", "TableStore"]

Ids = npt.NDArray[np.uint32]


# (VIP id, its new table, the previous table to give it when it has none now: a VIP this
# node starts serving mid-drain)
Swap = tuple[int, Ids, Ids | None]
# Inner maps held open at once by swap_many (file descriptors).
SWAP_BATCH = 256


class TableStore(Protocol):
    def swap(self, vip_id: int, ids: Ids) -> None: ...
    def swap_many(self, swaps: list[Swap]) -> None: ...
    def remove(self, vip_id: int) -> None: ...
    def read(self, vip_id: int) -> Ids | None: ...
    def read_previous(self, vip_id: int) -> Ids | None: ...
    def set_previous(self, vip_id: int, ids: Ids) -> None: ...


def _with_header(ids: Ids) -> Ids:
    return np.concatenate([np.array([len(ids)], dtype="<u4"), ids.astype("<u4")])


class KernelTables:
    """Tables as inner maps of shoal_maglev_v1; the ones they replaced in shoal_maglev_prev_v1
    (absent when the program predates it: no second chance then)."""

    def __init__(self, outer: KernelMap, prev: KernelMap | None = None) -> None:
        self.outer = outer
        self.prev = prev
        self._lib = bpf.lib()

    def set_previous(self, vip_id: int, ids: Ids) -> None:
        """A previous table this node never had current (a VIP it starts serving mid-drain)."""
        if self.prev is not None:
            self._store(self.prev, vip_id, ids)

    def swap(self, vip_id: int, ids: Ids) -> None:
        self.swap_many([(vip_id, ids, None)])

    def _store(self, outer: KernelMap, vip_id: int, ids: Ids) -> None:
        fd = self._filled(ids)
        try:
            # The outer map takes the inner map's fd; from here on the kernel holds it.
            outer.update(vip_id.to_bytes(4, "little"), fd.to_bytes(4, "little"))
        finally:
            os.close(fd)

    def _filled(self, ids: Ids) -> int:
        """A new inner map holding the table; the caller closes its fd."""
        values = _with_header(ids)
        create = bpf.opts(bpf.MapCreateOpts, map_flags=bpf.BPF_F_INNER_MAP)
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
        ~90 s; since Linux 6.8 a batch update waits once. Older kernels wait per element."""
        for start in range(0, len(swaps), SWAP_BATCH):
            self._swap_batch(swaps[start : start + SWAP_BATCH])

    def _swap_batch(self, swaps: list[Swap]) -> None:
        opened: list[int] = []
        try:
            prev: list[tuple[bytes, int]] = []
            new: list[tuple[bytes, int]] = []
            for vip_id, ids, seeded in swaps:
                key = vip_id.to_bytes(4, "little")
                previous = self._current_fd(key)
                if previous is not None:
                    opened.append(previous)
                elif seeded is not None and self.prev is not None:
                    previous = self._filled(seeded)
                    opened.append(previous)
                if previous is not None and self.prev is not None:
                    prev.append((key, previous))
                fd = self._filled(ids)
                opened.append(fd)
                new.append((key, fd))
            # The tables replaced are whole in the previous map before the swap (chance.h).
            if prev and self.prev is not None:
                _update_fds(self.prev, prev)
            _update_fds(self.outer, new)
        finally:
            for fd in opened:
                os.close(fd)

    def _current_fd(self, key: bytes) -> int | None:
        """An fd of the table the VIP has now (the caller closes it), or None."""
        raw = self.outer.lookup(key)
        if raw is None:
            return None
        fd: int = self._lib.call("bpf_map_get_fd_by_id", int.from_bytes(raw[:4], "little"))
        return fd

    def remove(self, vip_id: int) -> None:
        """The VIP has no table (no usable backend, or the VIP is gone): nothing to send a
        flow to, neither now nor as a previous owner."""
        key = vip_id.to_bytes(4, "little")
        self.outer.delete(key)
        if self.prev is not None:
            self.prev.delete(key)

    def read(self, vip_id: int) -> Ids | None:
        return self._read(self.outer, vip_id)

    def read_previous(self, vip_id: int) -> Ids | None:
        return None if self.prev is None else self._read(self.prev, vip_id)

    def _read(self, outer: KernelMap, vip_id: int) -> Ids | None:
        raw = outer.lookup(vip_id.to_bytes(4, "little"))
        if raw is None:
            return None
        map_id = int.from_bytes(raw[:4], "little")  # user space reads inner maps back as ids
        fd = self._lib.call("bpf_map_get_fd_by_id", map_id)
        inner = KernelMap(fd, own_fd=True)
        try:
            values = np.frombuffer(inner.lookup_all_array(), dtype="<u4")
        finally:
            inner.close()
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
