"""One map interface, two implementations: kernel maps through libbpf, and an in-memory fake
for tests that need no root. Typed wrappers convert ctypes structs at the edge, and per-CPU maps
return one value per possible CPU."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from shoal.dataplane import libbpf as bpf
from shoal.errors import BpfError, DataplaneError

__all__ = ["FakeMap", "KernelMap", "MapStore", "PerCpuMap", "TypedMap"]

K = TypeVar("K", bound="ctypes._CData")
V = TypeVar("V", bound="ctypes._CData")

ENOENT = 2


class MapStore(Protocol):
    """Raw byte-level access to one map. Per-CPU maps take and return all CPUs' values
    concatenated, each padded to 8 bytes, as bpf(2) does."""

    key_size: int
    value_size: int
    max_entries: int
    percpu: bool
    is_array: bool

    def lookup(self, key: bytes) -> bytes | None: ...
    def update(self, key: bytes, value: bytes, flags: int = bpf.BPF_ANY) -> None: ...
    def delete(self, key: bytes) -> bool: ...
    def iter_keys(self) -> Iterator[bytes]: ...
    def update_many(self, keys: bytes, values: bytes, count: int) -> None: ...


def percpu_stride(value_size: int) -> int:
    return (value_size + 7) & ~7


class KernelMap:
    """A BPF map held by fd. The fd is owned (closed) only when own_fd is true."""

    def __init__(self, fd: int, *, percpu: bool = False, own_fd: bool = False) -> None:
        self.fd = fd
        self._own = own_fd
        self._lib = bpf.lib()
        info = bpf.MapInfo()
        size = ctypes.c_uint32(ctypes.sizeof(info))
        self._lib.call("bpf_obj_get_info_by_fd", fd, ctypes.byref(info), ctypes.byref(size))
        self.key_size = info.key_size
        self.value_size = info.value_size
        self.max_entries = info.max_entries
        self.map_type = info.type
        self.map_id = info.id
        self.name = info.name.decode()
        self.percpu = percpu
        # ARRAY, PERCPU_ARRAY, PROG_ARRAY, ARRAY_OF_MAPS: every index exists, delete is invalid.
        self.is_array = info.type in (2, 6, 3, 12)
        self._vsize = self.value_size * 1  # per-CPU total computed below
        if percpu:
            self._vsize = percpu_stride(self.value_size) * self._lib.ncpus

    def close(self) -> None:
        if self._own and self.fd >= 0:
            import os

            os.close(self.fd)
            self.fd = -1

    def lookup(self, key: bytes) -> bytes | None:
        out = ctypes.create_string_buffer(self._vsize)
        rc = self._lib.func("bpf_map_lookup_elem")(self.fd, key, out)
        if rc == -ENOENT:
            return None
        if rc < 0:
            raise BpfError(f"lookup in {self.name}", -rc)
        return out.raw

    def update(self, key: bytes, value: bytes, flags: int = bpf.BPF_ANY) -> None:
        if len(value) != self._vsize:
            raise DataplaneError(
                f"{self.name}: value of {len(value)} bytes, map wants {self._vsize}"
            )
        rc = self._lib.func("bpf_map_update_elem")(self.fd, key, value, flags)
        if rc < 0:
            raise BpfError(f"update of {self.name}", -rc)

    def delete(self, key: bytes) -> bool:
        rc = self._lib.func("bpf_map_delete_elem")(self.fd, key)
        if rc == -ENOENT:
            return False
        if rc < 0:
            raise BpfError(f"delete from {self.name}", -rc)
        return True

    def iter_keys(self) -> Iterator[bytes]:
        if self.is_array:
            for i in range(self.max_entries):
                yield i.to_bytes(4, "little")
            return
        prev: bytes | None = None
        nxt = ctypes.create_string_buffer(self.key_size)
        while True:
            rc = self._lib.func("bpf_map_get_next_key")(self.fd, prev, nxt)
            if rc == -ENOENT:
                return
            if rc < 0:
                raise BpfError(f"iteration of {self.name}", -rc)
            prev = nxt.raw
            yield prev

    def update_many(self, keys: bytes, values: bytes, count: int) -> None:
        n = ctypes.c_uint32(count)
        opts = bpf.opts(bpf.BatchOpts)
        rc = self._lib.func("bpf_map_update_batch")(
            self.fd, keys, values, ctypes.byref(n), ctypes.byref(opts)
        )
        if rc < 0:
            raise BpfError(f"batch update of {self.name}", -rc)

    def lookup_all_array(self, limit: int | None = None) -> bytes:
        """Every value of an array map in index order, in batches (fast for big tables);
        with limit, those of the first `limit` entries only."""
        total = self.max_entries if limit is None else max(0, min(limit, self.max_entries))
        keys = ctypes.create_string_buffer(4 * total)
        values = ctypes.create_string_buffer(self._vsize * total)
        out_batch = ctypes.c_uint32(0)
        done = 0
        first = True
        while done < total:
            n = ctypes.c_uint32(total - done)
            opts = bpf.opts(bpf.BatchOpts)
            rc = self._lib.func("bpf_map_lookup_batch")(
                self.fd,
                None if first else ctypes.byref(out_batch),
                ctypes.byref(out_batch),
                ctypes.byref(keys, 4 * done),
                ctypes.byref(values, self._vsize * done),
                ctypes.byref(n),
                ctypes.byref(opts),
            )
            first = False
            done += n.value
            if rc == -ENOENT:
                break
            if rc < 0:
                raise BpfError(f"batch lookup of {self.name}", -rc)
        return values.raw[: self._vsize * done]


class FakeMap:
    """An in-memory map with the kernel's semantics for hashes and arrays."""

    def __init__(
        self,
        key_size: int,
        value_size: int,
        max_entries: int,
        *,
        percpu: bool = False,
        is_array: bool = False,
        ncpus: int = 2,
    ) -> None:
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.percpu = percpu
        self.is_array = is_array
        self.ncpus = ncpus
        self._vsize = percpu_stride(value_size) * ncpus if percpu else value_size
        self.data: dict[bytes, bytes] = {}

    def _check_key(self, key: bytes) -> None:
        if len(key) != self.key_size:
            raise DataplaneError(f"key of {len(key)} bytes, map wants {self.key_size}")
        if self.is_array and int.from_bytes(key, "little") >= self.max_entries:
            raise BpfError("fake map index", 7)  # E2BIG

    def lookup(self, key: bytes) -> bytes | None:
        self._check_key(key)
        if self.is_array:
            return self.data.get(key, bytes(self._vsize))
        return self.data.get(key)

    def update(self, key: bytes, value: bytes, flags: int = bpf.BPF_ANY) -> None:
        self._check_key(key)
        if len(value) != self._vsize:
            raise DataplaneError(f"value of {len(value)} bytes, map wants {self._vsize}")
        exists = self.is_array or key in self.data
        if flags == bpf.BPF_NOEXIST and exists:
            raise BpfError("fake map update", 17)  # EEXIST
        if flags == bpf.BPF_EXIST and not exists:
            raise BpfError("fake map update", ENOENT)
        if not exists and len(self.data) >= self.max_entries:
            raise BpfError("fake map update", 7)
        self.data[key] = value

    def delete(self, key: bytes) -> bool:
        self._check_key(key)
        if self.is_array:
            raise BpfError("fake array delete", 22)
        return self.data.pop(key, None) is not None

    def iter_keys(self) -> Iterator[bytes]:
        if self.is_array:
            for i in range(self.max_entries):
                yield i.to_bytes(4, "little")
        else:
            yield from list(self.data)

    def update_many(self, keys: bytes, values: bytes, count: int) -> None:
        for i in range(count):
            k = keys[i * self.key_size : (i + 1) * self.key_size]
            self.update(k, values[i * self._vsize : (i + 1) * self._vsize])


def _to_bytes(value: ctypes._CData) -> bytes:
    return bytes(value)


class TypedMap(Generic[K, V]):
    """A map whose keys and values are ctypes types from abi.py."""

    def __init__(self, store: MapStore, key_type: type[K], value_type: type[V]) -> None:
        if ctypes.sizeof(key_type) != store.key_size or (
            ctypes.sizeof(value_type) != store.value_size
        ):
            raise DataplaneError(
                f"map layout mismatch: {key_type.__name__}/{value_type.__name__} are "
                f"{ctypes.sizeof(key_type)}/{ctypes.sizeof(value_type)} bytes, the map has "
                f"{store.key_size}/{store.value_size}; the BPF object and Python disagree"
            )
        self.store = store
        self.key_type = key_type
        self.value_type = value_type

    def _key(self, key: K | int) -> bytes:
        if isinstance(key, int):
            return _to_bytes(self.key_type(key))  # type: ignore[call-arg]
        return _to_bytes(key)

    def get(self, key: K | int) -> V | None:
        raw = self.store.lookup(self._key(key))
        return (
            None
            if raw is None
            else self.value_type.from_buffer_copy(  # type: ignore[attr-defined]
                raw
            )
        )

    def set(self, key: K | int, value: V, flags: int = bpf.BPF_ANY) -> None:
        self.store.update(self._key(key), _to_bytes(value), flags)

    def delete(self, key: K | int) -> bool:
        return self.store.delete(self._key(key))

    def items(self) -> Iterator[tuple[K, V]]:
        for raw_key in self.store.iter_keys():
            raw = self.store.lookup(raw_key)
            if raw is not None:
                key = self.key_type.from_buffer_copy(raw_key)  # type: ignore[attr-defined]
                value = self.value_type.from_buffer_copy(raw)  # type: ignore[attr-defined]
                yield key, value

    def __len__(self) -> int:
        return sum(1 for _ in self.store.iter_keys())


class PerCpuMap(Generic[K, V]):
    """A per-CPU map: get() returns one value per possible CPU."""

    def __init__(self, store: MapStore, key_type: type[K], value_type: type[V]) -> None:
        TypedMap(store, key_type, value_type)  # the same layout check
        self.store = store
        self.key_type = key_type
        self.value_type = value_type
        self.stride = percpu_stride(ctypes.sizeof(value_type))

    @property
    def ncpus(self) -> int:
        return len(self.store.lookup(bytes(self.store.key_size)) or b"") // self.stride

    def get(self, key: int) -> list[V]:
        raw = self.store.lookup(_to_bytes(self.key_type(key))) or b""  # type: ignore[call-arg]
        n = len(raw) // self.stride
        return [
            self.value_type.from_buffer_copy(  # type: ignore[attr-defined]
                raw, i * self.stride
            )
            for i in range(n)
        ]

    def sums(self, rows: int | None = None) -> npt.NDArray[np.uint64]:
        """Every entry of a per-CPU array of 64-bit counters, summed over the CPUs: row i
        holds entry i's counters in field order. One batch lookup for the whole map (a
        lookup per entry costs ~20 us, which a scrape of 10,000 VIPs cannot pay). rows:
        only the first ones (the entries above are known to be unused)."""
        words = self.stride // 8
        store = self.store
        n = store.max_entries if rows is None else max(0, min(rows, store.max_entries))
        if isinstance(store, KernelMap):
            raw = store.lookup_all_array(n)
        else:
            raw = b"".join(
                store.lookup(i.to_bytes(store.key_size, "little")) or b"" for i in range(n)
            )
        values = np.frombuffer(raw, dtype="<u8")
        if not len(values):
            return np.zeros((0, words), dtype=np.uint64)
        ncpus = len(values) // (n * words)
        sums: npt.NDArray[np.uint64] = values.reshape(-1, ncpus, words).sum(axis=1, dtype=np.uint64)
        return sums

    def set_all(self, key: int, value: V) -> None:
        """Writes the same value on every CPU (used to reset counters)."""
        one = _to_bytes(value).ljust(self.stride, b"\0")
        self.store.update(_to_bytes(self.key_type(key)), one * self.ncpus)  # type: ignore[call-arg]
