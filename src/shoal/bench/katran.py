"""A Katran balancer object built elsewhere, loaded and filled for one VIP, so that
`shoal bench dataplane --katran-object` measures it in the same run as Shoal's paths.

Nothing of Katran lives here: the object is built outside the repository from Katran's own
sources (docs/performance.md says how) and given as a path at run time. This module only knows
the layout of the few maps a forwarding path reads (Katran's balancer_structs.h at 19f08fe):
vip_map (VIP -> number), ch_rings (one 65,537-slot Maglev ring per VIP number, real ids from 1),
reals (id -> address), ctl_array[0] (next hop MAC) and lru_mapping (an array of maps, one LRU
per CPU, which Katran's own userspace creates; without it every CPU falls back to a 1,000-entry
shared LRU, which is not the path being compared)."""

from __future__ import annotations

import ipaddress
import os
import struct
from pathlib import Path
from types import TracebackType

from shoal.dataplane import libbpf as bpf
from shoal.dataplane import loader, maglev
from shoal.dataplane.maps import KernelMap
from shoal.errors import BpfError, DataplaneError

__all__ = [
    "RING_SIZE",
    "KatranBalancer",
    "ctl_mac",
    "parse_objects",
    "real_definition",
    "ring_entries",
    "vip_key",
    "vip_meta",
]

RING_SIZE = 65537  # Katran's compile-time ring size per VIP
PROGRAM = "balancer_ingress"
BPF_MAP_TYPE_LRU_HASH = 9
# map -> (key size, value size) this module writes; checked after load so that an object of
# another Katran version fails with one line instead of filling maps it misreads.
LAYOUT = {
    "vip_map": (20, 8),
    "ch_rings": (4, 4),
    "reals": (4, 20),
    "ctl_array": (4, 8),
    "fallback_cache": (40, 16),
    "lru_mapping": (4, 4),
}


def _ipv4(addr: str) -> bytes:
    try:
        return ipaddress.IPv4Address(addr).packed
    except ValueError as exc:
        raise DataplaneError(f"Katran bench: {addr!r} is not an IPv4 address") from exc


def vip_key(addr: str, port: int, proto: int) -> bytes:
    """struct vip_definition: 16-byte address union (IPv4 in the first 4), port in network
    order, protocol, one byte of padding that must be zero for the hash lookup to match."""
    return _ipv4(addr) + bytes(12) + struct.pack("!H", port) + bytes([proto, 0])


def vip_meta(vip_num: int, flags: int = 0) -> bytes:
    """struct vip_meta: flags, then the VIP's number (its ring is slots vip_num * RING_SIZE...)."""
    return struct.pack("=II", flags, vip_num)


def real_definition(addr: str) -> bytes:
    """struct real_definition: 16-byte address union, flags (0: IPv4), padding to 20."""
    return _ipv4(addr) + bytes(16)


def ctl_mac(mac: str) -> bytes:
    """struct ctl_value as a MAC: six bytes in an 8-byte union."""
    try:
        raw = bytes.fromhex(mac.replace(":", ""))
    except ValueError:
        raw = b""
    if len(raw) != 6:
        raise DataplaneError(f"Katran bench: {mac!r} is not a MAC address")
    return raw + bytes(2)


def ring_entries(reals: list[str], vip_num: int = 0) -> tuple[bytes, bytes]:
    """Keys and values of one VIP's ring, filled with Shoal's own Maglev (any full table costs
    Katran the same one array lookup); value i+1 is reals[i], as Katran keeps id 0 unused."""
    if not reals:
        raise DataplaneError("Katran bench: a VIP needs at least one real")
    table = maglev.build_table([(r, 1) for r in reals], RING_SIZE)
    base = vip_num * RING_SIZE
    keys = struct.pack(f"={RING_SIZE}I", *range(base, base + RING_SIZE))
    values = (table.astype("<u4") + 1).tobytes()
    return keys, values


def parse_objects(spec: str) -> list[Path]:
    """`PATH[,PATH2]`: Katran built inserting (MAX_CONN_RATE 10^9), then optionally built not
    inserting (MAX_CONN_RATE 0) for the flood-mode rows."""
    paths = [Path(p.strip()) for p in spec.split(",") if p.strip()]
    if not 1 <= len(paths) <= 2:
        raise DataplaneError("--katran-object takes one or two paths: INSERTING[,NOT_INSERTING]")
    for path in paths:
        if not path.is_file():
            raise DataplaneError(f"--katran-object: {path} is not a file")
    return paths


class KatranBalancer:
    """One loaded Katran object with one TCP VIP over the given reals. lru_size: entries of
    each per-CPU LRU (the session table a like-for-like comparison sizes as Shoal's)."""

    def __init__(
        self,
        path: Path,
        vip: str,
        port: int,
        reals: list[str],
        next_hop_mac: str,
        lru_size: int,
    ) -> None:
        # One VIP only reads its own ring: 65,537 slots instead of the 33.5 million (134 MB)
        # of MAX_VIPS rings; an array lookup costs the same whatever its size.
        try:
            self._obj = loader.BpfObject(path, None, {"ch_rings": RING_SIZE})
        except BpfError as exc:
            raise DataplaneError(f"{path} is not a Katran balancer object ({exc})") from exc
        try:
            self.prog_fd = self._obj.prog_fd(PROGRAM)
            self._check_layout(path)
            self._fill(vip, port, reals, next_hop_mac, lru_size)
        except BaseException:
            self._obj.close()
            raise

    def _map(self, name: str) -> KernelMap:
        return KernelMap(self._obj.map_fd(name))

    def _check_layout(self, path: Path) -> None:
        for name, want in LAYOUT.items():
            try:
                m = self._map(name)
            except BpfError as exc:
                raise DataplaneError(f"{path.name}: no map {name}: not Katran's balancer") from exc
            if (m.key_size, m.value_size) != want:
                raise DataplaneError(
                    f"{path.name}: {name} has key/value sizes {m.key_size}/{m.value_size}, "
                    f"expected {want[0]}/{want[1]} (Katran @19f08fe layout)"
                )

    def _fill(self, vip: str, port: int, reals: list[str], mac: str, lru_size: int) -> None:
        lib = bpf.lib()
        for cpu in range(lib.ncpus):
            # Katran's userspace does the same: one LRU per CPU in lru_mapping.
            inner = lib.call(
                "bpf_map_create", BPF_MAP_TYPE_LRU_HASH, b"katran_lru", 40, 16, lru_size, None
            )
            try:
                self._map("lru_mapping").update(struct.pack("=I", cpu), struct.pack("=I", inner))
            finally:
                os.close(inner)  # the outer map holds its own reference
        reals_map = self._map("reals")
        for i, addr in enumerate(reals, start=1):
            reals_map.update(struct.pack("=I", i), real_definition(addr))
        keys, values = ring_entries(reals)
        self._map("ch_rings").update_many(keys, values, RING_SIZE)
        self._map("ctl_array").update(struct.pack("=I", 0), ctl_mac(mac))
        self._map("vip_map").update(vip_key(vip, port, 6), vip_meta(0))

    def close(self) -> None:
        self._obj.close()

    def __enter__(self) -> KatranBalancer:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
