"""Which session-table layout a kernel gets, and how many shards hold a table (sessions.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.dataplane import abi
from shoal.dataplane.sessions import sets_for, sharded_layout, shards_for


def test_kernels_that_store_a_batch_of_shards_with_one_wait_get_shards() -> None:
    # Linux 6.8 waits one RCU grace period per batch update of a map of maps; 6.1 one per
    # element, which would make a table of thousands of shards take minutes to create.
    assert not sharded_layout("6.1.0-27-amd64")
    assert not sharded_layout("6.7.12")
    assert sharded_layout("6.8.0-40-generic")
    assert sharded_layout("6.18.44-fc")
    assert sharded_layout("7.0.1")


@given(st.integers(min_value=1, max_value=1 << 26), st.sampled_from([1, 2, 3, 64, 256]))
def test_the_shards_hold_every_set_and_no_whole_shard_more(entries: int, cpus: int) -> None:
    sets = sets_for(entries, cpus)
    shards = shards_for(sets)
    per = 1 << abi.SESSION_SHARD_SHIFT
    assert shards * per >= sets > (shards - 1) * per
    assert sets * abi.SESSION_WAYS >= entries


def test_map_names_differ_in_the_fifteen_characters_the_kernel_keeps() -> None:
    # The kernel truncates a map's name to 15 characters; pins.py matches live maps by it.
    names = [*abi.LB_MAPS, *abi.TABLE_MAPS]
    assert len({n[:15] for n in names}) == len(names)
