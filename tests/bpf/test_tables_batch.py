"""Maglev tables swapped in batches (KernelTables.swap_many) leave the kernel's maps exactly
as one swap at a time would, previous tables included, across batch boundaries: checked
against FakeTables, the model the unit tests use. A batch is what lets a node's first 10,000
VIPs wait for one RCU grace period per batch instead of one per VIP."""

from __future__ import annotations

import errno
import random

import numpy as np
import pytest

from shoal.dataplane import tables
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.tables import FakeTables, Swap
from shoal.errors import BpfError


def _table(rng: random.Random) -> np.ndarray:
    return np.array([rng.randrange(1000) for _ in range(rng.choice((3, 7, 13)))], dtype="<u4")


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
        for outer in (kernel.outer, kernel.prev):

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
