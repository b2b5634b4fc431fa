"""Maglev tables swapped in batches (KernelTables.swap_many) leave the kernel's maps exactly
as one swap at a time would, previous tables included, across batch boundaries: checked
against FakeTables, the model the unit tests use. A batch is what lets a node's first 10,000
VIPs wait for one RCU grace period per batch instead of one per VIP."""

from __future__ import annotations

import errno
import random

import numpy as np
import pytest

from shoal.dataplane import abi, tables
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.tables import FakeTables, Swap
from shoal.errors import BpfError


def _table(rng: random.Random) -> np.ndarray:
    """Tables of class sizes and of other sizes (class 0), so swaps move VIPs between
    classes, previous tables included."""
    size = rng.choice((3, 13, *abi.MAGLEV_CLASS_SIZES[:2]))
    return np.array([rng.randrange(1000) for _ in range(size)], dtype="<u4")


@pytest.mark.parametrize("batch_updates", [True, False], ids=["batch", "no-batch-kernel"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batched_swaps_match_one_at_a_time(
    lb: Balancer, monkeypatch: pytest.MonkeyPatch, seed: int, batch_updates: bool
) -> None:
    monkeypatch.setattr(tables, "SWAP_BATCH", 5)  # several batches in one call
    rng = random.Random(seed)
    model = FakeTables()
    kernel = lb.maps.tables
    assert isinstance(kernel, tables.KernelTables)
    if not batch_updates:  # a kernel that refuses batch updates of map-in-maps
        for outer in kernel.outer_maps():

            def refuse(*args: object) -> None:
                raise BpfError("batch update", errno.EINVAL)

            monkeypatch.setattr(outer, "update_many", refuse)
    ids = list(range(40, 62))
    for vip_id in ids:
        kernel.remove(vip_id)
    for _ in range(3):
        swaps: list[Swap] = [
            (v, _table(rng), _table(rng) if rng.random() < 0.3 else None)
            for v in rng.sample(ids, rng.randrange(1, len(ids)))
        ]
        kernel.swap_many(swaps)
        model.swap_many(swaps)
        for vip_id in ids:
            for got, want in (
                (kernel.read(vip_id), model.read(vip_id)),
                (kernel.read_previous(vip_id), model.read_previous(vip_id)),
            ):
                assert (got is None) == (want is None), vip_id
                if got is not None and want is not None:
                    assert got.tolist() == want.tolist(), vip_id
    for vip_id in ids:
        kernel.remove(vip_id)


def test_class_changes_wait_once_per_map_not_once_per_vip(
    lb: Balancer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each update or delete of a map of maps from user space waits for an RCU grace period,
    and arrays of maps have no batch delete: 40 VIPs moving to another table class (as an
    upgrade's settle moves every VIP) must cost batch updates per map, never one call per VIP,
    and leave every table readable where the class word says."""
    kernel = lb.maps.tables
    assert isinstance(kernel, tables.KernelTables)
    ids = list(range(20, 60))
    small = np.arange(abi.MAGLEV_CLASS_SIZES[0], dtype="<u4") % 7
    big = np.arange(abi.MAGLEV_CLASS_SIZES[1], dtype="<u4") % 7
    kernel.swap_many([(v, small, None) for v in ids])
    calls: list[str] = []
    for outer in kernel.outer_maps():
        for name in ("update", "delete", "update_many"):
            original = getattr(outer, name)

            def spy(*args: object, _name: str = name, _f: object = original) -> object:
                calls.append(_name)
                return _f(*args)  # type: ignore[operator]

            monkeypatch.setattr(outer, name, spy)
    kernel.swap_many([(v, big, None) for v in ids])  # class 1 -> 2, previous class 1
    kernel.swap_many([(v, small, None) for v in ids])  # 2 -> 1, previous 2: class 1's buried
    assert "delete" not in calls and "update" not in calls
    # Per swap_many at most: previous tables, current ones, and the tombstones of the old
    # current and old previous classes.
    assert len(calls) <= 2 * 4
    for vip_id in ids:
        got, before = kernel.read(vip_id), kernel.read_previous(vip_id)
        assert got is not None and got.tolist() == small.tolist()
        assert before is not None and before.tolist() == big.tolist()
    monkeypatch.undo()
    for vip_id in ids:
        kernel.remove(vip_id)
