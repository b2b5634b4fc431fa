"""`shoal bench dataplane` measures the tables production runs: its VIPs get the Maglev table
the controller gives their backend count, not the config's 65,537 default (a cold slot of a
256 KiB table is a cache miss a 4 KiB one never pays), and a size asked for is what it runs."""

from __future__ import annotations

import pytest

from shoal.bench import dataplane as dp
from shoal.dataplane import maglev
from shoal.errors import ConfigError

pytestmark = pytest.mark.bpf


def _small_run(table_size: int | None = None) -> dp.DataplaneBench:
    return dp.run(calls=40, rounds=2, maglev_builds=False, table_probe=False, table_size=table_size)


def test_the_bench_vips_get_the_table_the_controller_gives_their_backends() -> None:
    bench = _small_run()
    assert bench.table_size == maglev.table_size_for(len(dp.BENCH_BACKENDS))
    assert bench.table_size != maglev.DEFAULT_TABLE_SIZE  # ten backends: a small prime
    assert [p.path for p in bench.paths if p.verdict.startswith("unexpected")] == []


def test_a_table_size_asked_for_is_the_one_measured_and_every_path_still_forwards() -> None:
    bench = _small_run(table_size=maglev.DEFAULT_TABLE_SIZE)
    assert bench.table_size == maglev.DEFAULT_TABLE_SIZE
    assert bench.as_dict()["table_size"] == maglev.DEFAULT_TABLE_SIZE
    assert [p.path for p in bench.paths if p.verdict.startswith("unexpected")] == []


@pytest.mark.parametrize("size", [1000, 2, 1 << 25])
def test_a_table_size_that_is_not_a_valid_prime_is_refused_before_anything_loads(
    size: int,
) -> None:
    with pytest.raises(ConfigError, match="table_size"):
        _small_run(table_size=size)
