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


def _sizes() -> list[int]:
    return [3, *abi.MAGLEV_CLASS_SIZES[:2]]  # class 0 and two classes


@pytest.mark.parametrize("seeded", [False, True], ids=["fresh", "seeded"])
def test_a_packet_never_sees_a_new_table_without_the_one_it_replaced(
    lb: Balancer, monkeypatch: pytest.MonkeyPatch, seeded: bool
) -> None:
    """After every single map write of a swap, what a packet reads (the tables the class word
    names) is the old pair, the old table twice, or the new table with the old one as its
    previous: never the new table with an older previous table, which would send flows placed
    with the old table to a backend without their socket. (The first swap after a VIP's
    creation once flipped its word only after storing the new table in place: under load a
    flow that missed its CPU's session cache lost its second chance for a grace period.)"""
    kernel = lb.maps.tables
    assert isinstance(kernel, tables.KernelTables)
    assert kernel.classes is not None
    vip = 7
    seen: list[tuple[list[int] | None, list[int] | None]] = []

    def state() -> tuple[list[int] | None, list[int] | None]:
        cur, prev = kernel.read(vip), kernel.read_previous(vip)
        return (
            None if cur is None else cur.tolist(),
            None if prev is None else prev.tolist(),
        )

    for outer in [*kernel.outer_maps(), kernel.classes.word]:
        for name in ("update", "update_many", "delete"):
            original = getattr(outer, name)

            def spy(*args: object, _f: object = original) -> object:
                result = _f(*args)  # type: ignore[operator]
                seen.append(state())
                return result

            monkeypatch.setattr(outer, name, spy)
    checked = 0
    for first in _sizes():
        for second in _sizes():
            for third in _sizes():
                kernel.remove(vip)
                tabs = [np.full(n, k, dtype="<u4") for k, n in enumerate((first, second, third))]
                seed = np.full(second, 99, dtype="<u4")
                # The VIP's first table (seeded: this node starts serving it mid-drain), then
                # two changes: the first change after creation, and one with a previous table.
                kernel.swap_many([(vip, tabs[0], seed if seeded else None)])
                for old, new in ((tabs[0], tabs[1]), (tabs[1], tabs[2])):
                    before = state()
                    seen.clear()
                    kernel.swap_many([(vip, new, None)])
                    allowed = [before, (old.tolist(), old.tolist()), (new.tolist(), old.tolist())]
                    assert before[0] == old.tolist()
                    bad = [s for s in seen if s not in allowed]
                    assert not bad, (
                        first,
                        second,
                        third,
                        [(s[0] and len(s[0]), s[1] and len(s[1])) for s in bad],
                    )
                    assert seen and seen[-1] == (new.tolist(), old.tolist())
                    checked += 1
    assert checked == 2 * len(_sizes()) ** 3
    monkeypatch.undo()
    kernel.remove(vip)
