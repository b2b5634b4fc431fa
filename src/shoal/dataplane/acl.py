"""Per-VIP client prefix lists (a listener's allowed_cidrs) in the data plane's tries.

Each VIP owns two ACL ids, 2*vip_id and 2*vip_id + 1; shoal_acl_ids_v1[vip_id] says which one
the XDP program reads. A new list is written under the id not in use, then that one word is
switched, then the old entries go: every packet sees either the whole old list or the whole new
one (bpf/lb/acl.h). plan_acl is a pure function of what the tries hold and what is wanted;
AclTables reads and writes the maps."""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from dataclasses import dataclass, field

from shoal.dataplane import abi
from shoal.dataplane.maps import TypedMap
from shoal.dataplane.prefixes import ONE, IpNetwork, acl_key, acl_key_network
from shoal.errors import ConfigError

__all__ = ["AclPlan", "AclTables", "acl_ids_of", "plan_acl"]

Entry = tuple[int, IpNetwork]  # (ACL id, allowed prefix)


def acl_ids_of(vip_id: int) -> tuple[int, int]:
    return 2 * vip_id, 2 * vip_id + 1


@dataclass
class AclPlan:
    ids: dict[int, int] = field(default_factory=dict)  # vip_id -> ACL id to switch to
    pre_deletes: list[Entry] = field(default_factory=list)  # leftovers under ids about to be used
    writes: list[Entry] = field(default_factory=list)
    post_deletes: list[Entry] = field(default_factory=list)  # after the switch and VIP writes
    changed: set[int] = field(default_factory=set)  # VIP ids whose list changes


def plan_acl(
    current: dict[int, set[IpNetwork]],
    active: dict[int, int],
    wanted: dict[int, list[IpNetwork]],
    capacity: int,
) -> AclPlan:
    """current: ACL id -> prefixes the tries hold; active: VIP id -> ACL id its packets read
    now (VIPs flagged SHOAL_VIP_F_ACL only); wanted: VIP id -> its new list (VIPs with one)."""
    plan = AclPlan()
    target: dict[int, int] = {}
    for vip_id, nets in wanted.items():
        now = active.get(vip_id)
        if now is not None and current.get(now, set()) == set(nets):
            target[vip_id] = now
            continue
        first, second = acl_ids_of(vip_id)
        target[vip_id] = second if now == first else first
        plan.ids[vip_id] = target[vip_id]
        plan.changed.add(vip_id)
    plan.changed |= {v for v in active if v not in wanted}
    desired = {(target[v], n) for v, nets in wanted.items() for n in nets}
    existing = {(i, n) for i, nets in current.items() for n in nets}
    fresh = set(plan.ids.values())  # not read by any packet until switched to
    plan.pre_deletes = sorted((e for e in existing - desired if e[0] in fresh), key=_order)
    plan.writes = sorted(desired - existing, key=_order)
    plan.post_deletes = sorted(existing - desired - set(plan.pre_deletes), key=_order)
    for version in (4, 6):
        peak = sum(
            1 for e in (existing | desired) - set(plan.pre_deletes) if e[1].version == version
        )
        if peak > capacity:
            raise ConfigError(
                f"allowed_cidrs: {peak} IPv{version} prefixes over every VIP during the change, "
                f"this data plane holds {capacity}"
            )
    return plan


def _order(entry: Entry) -> tuple[int, int, bytes, int]:
    acl_id, net = entry
    return acl_id, net.version, net.network_address.packed, net.prefixlen


class AclTables:
    """The three ACL maps of one balancer."""

    def __init__(
        self,
        ids: TypedMap[ctypes.c_uint32, ctypes.c_uint32],
        trie4: TypedMap[abi.Acl4Key, ctypes.c_uint32],
        trie6: TypedMap[abi.Acl6Key, ctypes.c_uint32],
    ) -> None:
        self.ids = ids
        self.trie4 = trie4
        self.trie6 = trie6

    def capacity(self) -> int:
        return min(self.trie4.store.max_entries, self.trie6.store.max_entries)

    def read(self) -> dict[int, set[IpNetwork]]:
        """ACL id -> the prefixes stored under it."""
        out: dict[int, set[IpNetwork]] = {}
        keys: list[abi.Acl4Key | abi.Acl6Key] = [k for k, _ in self.trie4.items()]
        keys += [k for k, _ in self.trie6.items()]
        for key in keys:
            acl_id, net = acl_key_network(key)
            out.setdefault(acl_id, set()).add(net)
        return out

    def active_id(self, vip_id: int) -> int:
        value = self.ids.get(vip_id)
        return int(value.value) if value is not None else 0

    def write(self, entries: Iterable[Entry]) -> None:
        for acl_id, net in entries:
            self._trie(net).set(acl_key(acl_id, net), ONE)

    def delete(self, entries: Iterable[Entry]) -> None:
        for acl_id, net in entries:
            self._trie(net).delete(acl_key(acl_id, net))

    def switch(self, ids: dict[int, int]) -> None:
        for vip_id, acl_id in ids.items():
            self.ids.set(vip_id, ctypes.c_uint32(acl_id))

    def _trie(self, net: IpNetwork) -> TypedMap:  # type: ignore[type-arg]
        return self.trie4 if net.version == 4 else self.trie6
