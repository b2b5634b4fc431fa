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

__all__ = ["FakeTables", "KernelTables", "TableStore"]

Ids = npt.NDArray[np.uint32]


class TableStore(Protocol):
    def swap(self, vip_id: int, ids: Ids) -> None: ...
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

    def _keep_previous(self, vip_id: int) -> None:
        if self.prev is None:
            return
        key = vip_id.to_bytes(4, "little")
        raw = self.outer.lookup(key)
        if raw is None:
            return  # no table before: the previous one (if any) stays the previous one
        fd = self._lib.call("bpf_map_get_fd_by_id", int.from_bytes(raw[:4], "little"))
        try:
            self.prev.update(key, fd.to_bytes(4, "little"))
        finally:
            os.close(fd)

    def set_previous(self, vip_id: int, ids: Ids) -> None:
        """A previous table this node never had current (a VIP it starts serving mid-drain)."""
        if self.prev is not None:
            self._store(self.prev, vip_id, ids)

    def swap(self, vip_id: int, ids: Ids) -> None:
        self._keep_previous(vip_id)
        self._store(self.outer, vip_id, ids)

    def _store(self, outer: KernelMap, vip_id: int, ids: Ids) -> None:
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
            # The outer map takes the inner map's fd; from here on the kernel holds it.
            outer.update(vip_id.to_bytes(4, "little"), fd.to_bytes(4, "little"))
        finally:
            os.close(fd)

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
