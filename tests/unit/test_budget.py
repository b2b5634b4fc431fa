"""The node memory budget: 10,000 VIPs and 100,000 backends fit in 2 GiB of maps at 64 CPUs
because table sizes follow backend counts; at one fixed 65,537-slot size they would not."""

from __future__ import annotations

from shoal.dataplane import maglev
from shoal.dataplane.budget import NodePlan, map_bytes, total_bytes

GIB = 1 << 30


def test_a_region_node_fits_in_two_gib_at_64_cpus() -> None:
    plan = NodePlan(vips=10_000, backends=100_000, cpus=64)
    assert plan.slots_per_vip == 1021
    assert total_bytes(plan) < 2 * GIB
    assert plan.sessions_per_cpu == 65_536


def test_fixed_large_tables_would_not_fit() -> None:
    plan = NodePlan(vips=10_000, backends=100_000, cpus=64, table_size=65537)
    assert map_bytes(plan)["maglev tables"] > 4 * GIB  # u32 slots cost 8 bytes in an array


def test_per_cpu_maps_grow_with_cpus_and_the_others_do_not() -> None:
    small, big = map_bytes(NodePlan(cpus=2)), map_bytes(NodePlan(cpus=64))
    for name in ("shoal_backend_stats_v1", "shoal_nexthops_v1", "shoal_vip_stats_v1"):
        assert big[name] > 20 * small[name]
    for name in ("session shards", "maglev tables", "shoal_backends_v1"):
        assert big[name] == small[name]


def test_table_sizes_give_each_backend_a_hundred_slots() -> None:
    assert [maglev.table_size_for(n) for n in (0, 1, 2, 3, 10, 11, 40, 163, 164, 655, 656)] == [
        251,
        251,
        251,
        1021,
        1021,
        4093,
        4093,
        16381,
        65537,
        65537,
        65537,
    ]
    assert all(maglev.is_prime(m) for m in maglev.TABLE_SIZES)
    assert maglev.table_size_for(100_000) == maglev.DEFAULT_TABLE_SIZE


def test_the_session_cache_keeps_its_total_split_per_cpu() -> None:
    """Sets of 4 ways, one stripe per CPU: the same total entries at any CPU count (rounded up
    to whole sets a stripe), 60 bytes an entry (a 56-byte way and its 4-byte tag)."""
    for cpus in (1, 2, 3, 64):
        plan = NodePlan(cpus=cpus)
        assert plan.sessions_per_cpu * cpus >= plan.sessions
        assert plan.sessions_per_cpu * cpus - plan.sessions < 4 * cpus
    plan = NodePlan(cpus=2)
    assert plan.sessions_per_cpu == 2_097_152
    assert map_bytes(plan)["session shards"] // plan.sessions == 60
    flat = NodePlan(cpus=2, sharded=False)
    assert map_bytes(flat)["shoal_sessions_v2"] // flat.sessions == 60
    assert map_bytes(flat)["session shards"] == 0
