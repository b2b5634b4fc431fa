"""Per-VIP client prefix lists (a listener's allowed_cidrs) in the data plane's tries.

Each VIP owns two ACL ids, 2*vip_id and 2*vip_id + 1; the parity of its word in
shoal_acl_words_v1 says which one the XDP program reads. A new list is written under the id not
in use, then that one word moves on to the next value of the other parity, then the old entries
go: every packet sees either the whole old list or the whole new one (bpf/lb/acl.h). The word
never takes a value twice, so a session way that records it (FlowKey.admitted) was let through
by the list in force exactly when the two agree. shoal_acl_ids_v1 keeps the id in force itself,
for programs before the words (a downgrade) and as the record the words are renewed from.
plan_acl is a pure function of what the tries hold and what is wanted; AclTables reads and
writes the maps."""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from dataclasses import dataclass, field

from shoal.dataplane import abi
from shoal.dataplane.maps import KernelMap, TypedMap
from shoal.dataplane.prefixes import ONE, IpNetwork, acl_key, acl_key_network
from shoal.errors import ConfigError

__all__ = ["AclPlan", "AclTables", "acl_ids_of", "next_word", "plan_acl"]

Entry = tuple[int, IpNetwork]  # (ACL id, allowed prefix)


def acl_ids_of(vip_id: int) -> tuple[int, int]:
    return 2 * vip_id, 2 * vip_id + 1


def next_word(word: int, acl_id: int) -> int:
    """The word after `word` that selects `acl_id` (its parity); 32 bits, never 0 (0 is the
    word of a VIP that never had a list)."""
    nxt = (word + 1) & 0xFFFFFFFF
    if nxt & 1 != acl_id & 1:
        nxt = (nxt + 1) & 0xFFFFFFFF
    return nxt or 2


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
        words: TypedMap[ctypes.c_uint32, ctypes.c_uint32],
        trie4: TypedMap[abi.Acl4Key, ctypes.c_uint32],
        trie6: TypedMap[abi.Acl6Key, ctypes.c_uint32],
    ) -> None:
        self.ids = ids
        self.words = words
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

    def word(self, vip_id: int) -> int:
        value = self.words.get(vip_id)
        return int(value.value) if value is not None else 0

    def active_id(self, vip_id: int) -> int:
        """The ACL id the program reads for this VIP (bpf/lb/acl.h: acl_allows)."""
        return 2 * vip_id + (self.word(vip_id) & 1)

    def renew_words(self) -> int:
        """At load, before the program runs: moves every VIP's word on to a value not used
        before that selects the id shoal_acl_ids_v1 holds. An earlier program may have run
        in between (an upgrade, or a downgrade and back) and left words that select another
        id or that session ways recorded under another list; renewed, every flow is checked
        against the list in force on its next packet. Returns the number of words written."""
        store = self.ids.store
        if isinstance(store, KernelMap):  # one batch read, not a lookup per VIP id
            raw = store.lookup_all_array()
            ids = [int.from_bytes(raw[i : i + 4], "little") for i in range(0, len(raw), 4)]
        else:
            ids = [int(v.value) for _, v in sorted(self.ids.items(), key=lambda kv: kv[0].value)]
        written = 0
        for vip_id, acl_id in enumerate(ids):
            if acl_id >> 1 != vip_id:
                continue  # no list was ever switched in for this VIP id
            self.words.set(vip_id, ctypes.c_uint32(next_word(self.word(vip_id), acl_id)))
            written += 1
        return written

    def write(self, entries: Iterable[Entry]) -> None:
        for acl_id, net in entries:
            self._trie(net).set(acl_key(acl_id, net), ONE)

    def delete(self, entries: Iterable[Entry]) -> None:
        for acl_id, net in entries:
            self._trie(net).delete(acl_key(acl_id, net))

    def switch(self, ids: dict[int, int]) -> None:
        """Points each VIP at its ACL id by a word never used before (a switch to the id in
        force still moves the word: the list under it was rewritten)."""
        for vip_id, acl_id in ids.items():
            self.words.set(vip_id, ctypes.c_uint32(next_word(self.word(vip_id), acl_id)))
            self.ids.set(vip_id, ctypes.c_uint32(acl_id))

    def _trie(self, net: IpNetwork) -> TypedMap:  # type: ignore[type-arg]
        return self.trie4 if net.version == 4 else self.trie6
