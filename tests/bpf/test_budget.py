"""The memory budget (shoal.dataplane.budget) against what the kernel charges for real maps."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.dataplane import abi, features
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.budget import BUCKET, PER_HASH, VIP_ENTRY, NodePlan, map_bytes
from shoal.dataplane.config import parse_config
from shoal.dataplane.sessions import ShardedSets, sharded_layout

pytestmark = pytest.mark.bpf


def _possible_cpus() -> int:
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    return sum(
        int(b) - int(a) + 1 if "-" in part else 1
        for part in text.split(",")
        for a, _, b in [part.partition("-")]
    )


def _memlock(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("memlock:"):
                return int(line.split()[1])
    raise AssertionError("no memlock line")


@pytest.mark.skipif(
    features.kernel_version() < (6, 4),
    reason="before 6.4 the memlock line of fdinfo is a rough footprint (entries x (key + value)"
    " rounded up to pages), not what the kernel charges (map_mem_usage came in 6.4)",
)
def test_the_budget_is_what_the_kernel_charges() -> None:
    plan = NodePlan(
        vips=128, backends=2048, sessions=8192, cpus=_possible_cpus(), sharded=sharded_layout()
    )
    with Balancer.load(
        pin=False,
        session_cache_size=plan.sessions,
        max_vips=plan.vips,
        max_backends=plan.backends,
    ) as lb:
        assert lb.obj is not None
        expected = map_bytes(plan)
        # A hash map's fixed part (struct bpf_htab and its per-CPU lock counters) depends on
        # the kernel's build: 896 bytes on one 6.18 here, 960 on 6.18.44-fc. It is measured
        # on the empty VIP hash (its buckets are known) and must stay near the budget's.
        per_hash = _memlock(lb.obj.map_fd("shoal_vips_v1")) - 128 * BUCKET
        assert abs(per_hash - PER_HASH) <= 256, per_hash
        exact = [
            n for n in abi.LB_MAPS if n not in ("shoal_vips_v1", "shoal_acl4_v1", "shoal_acl6_v1")
        ]
        for name in [*exact, abi.SESSIONS_MAP]:
            shift = per_hash - PER_HASH if name == "shoal_frags_v1" else 0
            assert _memlock(lb.obj.map_fd(name)) == expected[name] + shift, name
        shards = lb.maps.sessions.sets.store
        if isinstance(shards, ShardedSets):  # each shard as the budget counts it
            one = expected["session shards"] // plan.session_shards
            assert shards.shards == plan.session_shards
            assert _memlock(shards._shard(0).fd) == one
        # The VIP hash without preallocation: buckets now, entries as they come.
        vips = [
            {"address": f"10.0.0.{i}", "port": 80, "protocol": "tcp", "table_size": 251}
            for i in range(1, 101)
        ]
        lb.apply(parse_config({"vips": vips}))
        held = per_hash + 128 * BUCKET + 100 * VIP_ENTRY  # struct, 128 buckets, 100 entries
        assert _memlock(lb.obj.map_fd("shoal_vips_v1")) == pytest.approx(held, rel=0.05)
