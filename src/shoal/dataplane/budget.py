"""Kernel memory of an L4 node's maps, computed from their sizes the way the kernel accounts
it (the `memlock` line of a map's fdinfo; checked against loaded maps in
tests/bpf/test_budget.py):

- array: entries x value rounded up to 8 bytes (so a Maglev slot, a u32, costs 8; the
  session cache is an array of 240-byte sets, 60 bytes an entry);
- per-CPU array: entries x (value rounded up to 8 x possible CPUs + an 8-byte pointer);
- preallocated (LRU) hash: entries x (48-byte element header + key + value) + 16 bytes per
  bucket, buckets = entries rounded up to a power of two;
- hash without preallocation: 16 bytes per bucket, plus 88 bytes per VIP entry held;
- LPM trie: 36 bytes per IPv4 prefix held (48 per IPv6 prefix).

`shoal dataplane budget` and docs/dataplane.md print the table for a node plan."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from shoal.dataplane import abi, maglev
from shoal.dataplane.sessions import sets_for, shards_for

__all__ = ["NodePlan", "map_bytes", "total_bytes"]

HASH_ELEM = 48
BUCKET = 16
VIP_ENTRY = 88
ACL4_NODE = 36
ACL6_NODE = 48
PER_MAP = 312  # struct bpf_array and friends
PER_HASH = 896  # struct bpf_htab and its per-CPU lock counters (960 on some 6.18 builds)


@dataclass(frozen=True)
class NodePlan:
    """What one L4 node is sized for."""

    vips: int = 10_000
    backends: int = 100_000
    sessions: int = abi.DEFAULT_SESSIONS
    cpus: int = 64  # possible CPUs (/sys/devices/system/cpu/possible)
    acl_prefixes: int = abi.MAX_ACL_PREFIXES  # per family
    # Maglev table size of the typical VIP: table_size_for(backends per VIP) by default.
    table_size: int | None = None
    sharded: bool = True  # the session table's layout (sessions.sharded_layout)

    @property
    def slots_per_vip(self) -> int:
        if self.table_size is not None:
            return self.table_size
        return maglev.table_size_for(-(-self.backends // max(self.vips, 1)))

    @property
    def session_sets(self) -> int:
        """Sets of the session cache over all CPU stripes (sessions.sets_for)."""
        return sets_for(self.sessions, self.cpus)

    @property
    def session_shards(self) -> int:
        """Shards of the session cache on a kernel that stores many at once (Linux >= 6.8)."""
        return shards_for(self.session_sets)

    @property
    def sessions_per_cpu(self) -> int:
        """The session cache has one stripe per CPU: each CPU holds at most this many flows
        (a flow stays on the CPU its receive queue hashes it to)."""
        return self.session_sets // self.cpus * abi.SESSION_WAYS


def _r8(n: int) -> int:
    return (n + 7) // 8 * 8


def _pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _array(entries: int, value: type) -> int:
    return PER_MAP + entries * _r8(ctypes.sizeof(value))


def _percpu(entries: int, value: type, cpus: int) -> int:
    return PER_MAP + entries * (_r8(ctypes.sizeof(value)) * cpus + 8)


def map_bytes(plan: NodePlan) -> dict[str, int]:
    """Bytes per map (tables: all VIPs' inner maps together) for a node sized by `plan`."""
    return {
        "shoal_vips_v1": PER_HASH + _pow2(plan.vips) * BUCKET + plan.vips * VIP_ENTRY,
        "shoal_vip_filter_v1": _array(abi.VIP_FILTER_WORDS, ctypes.c_uint64),
        # One outer map per table class, current and previous (tables.py); the tables
        # themselves are counted once whatever class holds them.
        **{name: _array(plan.vips, ctypes.c_uint64) for name in abi.MAGLEV_CURRENT_MAPS},
        abi.MAGLEV_CLASS_MAP: _array(plan.vips, ctypes.c_uint32),
        "maglev tables": plan.vips * (PER_MAP + (plan.slots_per_vip + 1) * 8),
        # Second chance: each VIP's table before its last change (at most one per VIP).
        **{name: _array(plan.vips, ctypes.c_uint64) for name in abi.MAGLEV_PREVIOUS_MAPS},
        "previous maglev tables": plan.vips * (PER_MAP + (plan.slots_per_vip + 1) * 8),
        "shoal_backends_v1": _array(plan.backends, abi.Backend),
        # Sharded (Linux >= 6.8): the outer map and its shards, the flat map one set; flat:
        # every set in the flat map, the outer map one entry (bpf/lb/lb_maps.h).
        "shoal_sessions_v2": _array(1 if plan.sharded else plan.session_sets, abi.SessionSet),
        abi.SESSIONS_MAP: _array(plan.session_shards if plan.sharded else 1, ctypes.c_uint64),
        "session shards": plan.session_shards * _array(1 << abi.SESSION_SHARD_SHIFT, abi.SessionSet)
        if plan.sharded
        else 0,
        "shoal_session_geom_v1": _array(1, abi.SessionGeom),
        # Fixed: the last SYN per bucket, shared by every CPU (512 KiB).
        "shoal_syn_marks_v1": _array(abi.SYN_MARKS, abi.SynMark),
        "shoal_config_v2": _array(1, abi.Config),
        "shoal_flood_v1": _percpu(1, abi.FloodState, plan.cpus),
        "shoal_counters_v2": _percpu(abi.COUNTER_SLOTS, ctypes.c_uint64, plan.cpus),
        "shoal_vip_stats_v1": _percpu(plan.vips, abi.Traffic, plan.cpus),
        "shoal_backend_stats_v1": _percpu(plan.backends, abi.Traffic, plan.cpus),
        "shoal_nexthops_v1": _percpu(plan.backends, abi.Nexthop, plan.cpus),
        "shoal_acl_ids_v1": _array(plan.vips, ctypes.c_uint32),
        "shoal_acl_words_v1": _array(plan.vips, ctypes.c_uint32),
        "shoal_acl4_v1": plan.acl_prefixes * ACL4_NODE,
        "shoal_acl6_v1": plan.acl_prefixes * ACL6_NODE,
        "shoal_acl_drops_v1": _percpu(plan.vips, ctypes.c_uint64, plan.cpus),
        "shoal_frags_v1": PER_HASH
        + abi.FRAG_ENTRIES
        * (HASH_ELEM + _r8(ctypes.sizeof(abi.FragKey)) + _r8(ctypes.sizeof(abi.FragVal)))
        + _pow2(abi.FRAG_ENTRIES) * BUCKET,
        "shoal_icmp_rate_v1": _percpu(1, abi.IcmpRate, plan.cpus),
    }


def total_bytes(plan: NodePlan) -> int:
    return sum(map_bytes(plan).values())


if __name__ == "__main__":
    for cpus in (2, 16, 64):
        p = NodePlan(cpus=cpus)
        rows = map_bytes(p)
        print(f"{cpus} CPUs: {total_bytes(p) / 2**20:.1f} MiB")
        for name, n in sorted(rows.items(), key=lambda r: -r[1]):
            print(f"  {name:24} {n / 2**20:10.2f} MiB")
