"""Per-VIP Maglev tables in the data plane. A table is a whole inner map: slot 0 holds its
size M, slots 1..M the backend ids. Swapping the inner map in the outer ARRAY_OF_MAPS is one
atomic pointer store, so a packet sees either the old table or the new one, never a mix."""

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


def _with_header(ids: Ids) -> Ids:
    return np.concatenate([np.array([len(ids)], dtype="<u4"), ids.astype("<u4")])


class KernelTables:
    """Tables as inner maps of shoal_maglev_v1."""

    def __init__(self, outer: KernelMap) -> None:
        self.outer = outer
        self._lib = bpf.lib()

    def swap(self, vip_id: int, ids: Ids) -> None:
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
            self.outer.update(vip_id.to_bytes(4, "little"), fd.to_bytes(4, "little"))
        finally:
            os.close(fd)

    def remove(self, vip_id: int) -> None:
        self.outer.delete(vip_id.to_bytes(4, "little"))

    def read(self, vip_id: int) -> Ids | None:
        raw = self.outer.lookup(vip_id.to_bytes(4, "little"))
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
        self.swaps = 0

    def swap(self, vip_id: int, ids: Ids) -> None:
        self.tables[vip_id] = ids.astype("<u4").copy()
        self.swaps += 1

    def remove(self, vip_id: int) -> None:
        self.tables.pop(vip_id, None)

    def read(self, vip_id: int) -> Ids | None:
        table = self.tables.get(vip_id)
        return None if table is None else table.copy()
