"""What the data plane holds, as this process last wrote it, so that an apply costs what it
changes: reading every map back on each change costs O(VIPs + backends) syscalls.

The mirror is read from the maps once (a new process adopts whatever the pinned maps hold)
and then kept in step by every successful write; a failed write drops it and the next apply
reads the maps again. The agent owns its instance: writing the same maps from another
process (`shoal dataplane apply` on an agent's instance) is not supported while it runs."""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field

from shoal.dataplane import abi
from shoal.dataplane.config import VipSpec
from shoal.dataplane.prefixes import IpNetwork

__all__ = ["Allocator", "AppliedVip", "Mirror", "spec_digest"]


@dataclass(frozen=True)
class VipState:
    """A VIP as the maps hold it."""

    vip_id: int
    flags: int


@dataclass(frozen=True)
class AppliedVip:
    spec: VipSpec
    digest: bytes  # spec_digest of spec under the seed it was applied with
    table_digest: str | None  # the Maglev digest reported for it (None: no backends)


def spec_digest(spec: VipSpec, seed: bytes) -> bytes:
    """A VIP's canonical inputs (address, flags, backends, weights, health, ACL, table size,
    under the node seed): equal digests mean equal maps for that VIP."""
    h = hashlib.blake2b(seed, digest_size=16)
    h.update(spec.model_dump_json().encode())
    return h.digest()


@dataclass
class Mirror:
    vips: dict[bytes, VipState]  # VIP key bytes -> id and flags
    backends: dict[int, abi.Backend]  # slot -> entry, allocated or freed with a generation
    slots_of: dict[int, dict[bytes, int]]  # vip_id -> backend address words -> slot
    acl: dict[int, set[IpNetwork]]  # ACL id -> prefixes stored under it
    acl_active: dict[int, int]  # VIP id -> ACL id read now (VIPs flagged SHOAL_VIP_F_ACL)
    free_vip_ids: list[int] = field(default_factory=list)  # sorted
    free_slots: list[int] = field(default_factory=list)  # sorted
    table_hashes: dict[int, bytes] = field(default_factory=dict)  # vip_id -> hash of its ids
    # vip_id -> its table generation (shoal_abi.h), as its backend entries carry it; kept
    # here so that it keeps counting while a VIP has no backend entry.
    table_gens: dict[int, int] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        vips: dict[bytes, VipState],
        backends: dict[int, abi.Backend],
        acl: dict[int, set[IpNetwork]],
        acl_active: dict[int, int],
        max_vips: int,
        max_backends: int,
    ) -> Mirror:
        slots_of: dict[int, dict[bytes, int]] = {}
        for slot, b in backends.items():
            if b.family:
                slots_of.setdefault(int(b.vip_id), {})[bytes(b.addr)] = slot
        used_ids = {v.vip_id for v in vips.values()}
        gens = {int(b.vip_id): int(b.table_gen) for b in backends.values() if b.family}
        return cls(
            vips,
            backends,
            slots_of,
            acl,
            acl_active,
            [i for i in range(max_vips) if i not in used_ids],
            [i for i in range(max_backends) if i not in backends or not backends[i].family],
            table_gens=gens,
        )

    def rows_in_use(self, max_vips: int, max_backends: int) -> tuple[int, int]:
        """(VIP ids, backend slots) below which every one in use lies: ids are handed out
        lowest first, so a counter read can stop there instead of at the maps' capacity."""
        return _free_from(self.free_vip_ids, max_vips), _free_from(self.free_slots, max_backends)

    def release(self, vip_ids: list[int], slots: list[int]) -> None:
        for i in vip_ids:
            bisect.insort(self.free_vip_ids, i)
        for s in slots:
            bisect.insort(self.free_slots, s)


class Allocator:
    """Hands out ids free before this apply, lowest first. Ids freed by the same apply are
    not reused by it: a removed VIP's table or a removed backend's entry may still be read
    by packets until the apply's last step."""

    def __init__(self, mirror: Mirror) -> None:
        self._vip_ids = mirror.free_vip_ids
        self._slots = mirror.free_slots
        self.vip_ids_taken = 0
        self.slots_taken = 0

    def vip_id(self) -> int | None:
        if self.vip_ids_taken >= len(self._vip_ids):
            return None
        self.vip_ids_taken += 1
        return self._vip_ids[self.vip_ids_taken - 1]

    def slot(self) -> int | None:
        if self.slots_taken >= len(self._slots):
            return None
        self.slots_taken += 1
        return self._slots[self.slots_taken - 1]

    def commit(self, mirror: Mirror) -> None:
        del mirror.free_vip_ids[: self.vip_ids_taken]
        del mirror.free_slots[: self.slots_taken]


def _free_from(free: list[int], total: int) -> int:
    """The lowest n such that every id from n to total - 1 is in free (sorted, unique): the
    free ids from index i on are a run ending at total - 1 exactly when free[i] + the count
    from i equals total, which holds for a suffix of the list (binary search)."""
    lo, hi = 0, len(free)
    while lo < hi:
        mid = (lo + hi) // 2
        if free[mid] + len(free) - mid == total:
            hi = mid
        else:
            lo = mid + 1
    return free[lo] if lo < len(free) else total
