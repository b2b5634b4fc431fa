"""Counter reads stop at the rows in use: ids are handed out lowest first, so every VIP id and
backend slot in use lies below the first id of the free run that ends the range. A traffic
report at 100 load balancers read the 131,072 backend slots of a node's capacity (~90 ms of
agent CPU each); it reads the few thousand in use."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.agents.l4.translate import translate
from shoal.bench.applycost import desired_state
from shoal.dataplane import abi, clock
from shoal.dataplane.applied import Mirror
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.config import DataplaneConfig, Settings

CASES = st.integers(0, 64).flatmap(
    lambda n: st.tuples(st.just(n), st.sets(st.integers(0, max(0, n - 1)), max_size=n))
)


@given(CASES)
def test_rows_in_use_is_one_past_the_highest_id_in_use(case: tuple[int, set[int]]) -> None:
    total, used = case
    used = {u for u in used if u < total}
    free = [i for i in range(total) if i not in used]
    mirror = Mirror({}, {}, {}, {}, {}, free_vip_ids=free, free_slots=list(free))
    expect = max(used) + 1 if used else 0
    assert mirror.rows_in_use(total, total) == (expect, expect)


def test_sums_of_the_first_rows_are_those_rows_of_the_whole() -> None:
    lb = Balancer.fake(max_vips=64, max_backends=256)
    for slot, packets in ((0, 1), (3, 7), (200, 9)):
        lb.maps.backend_stats.set_all(slot, abi.Traffic(packets=packets, bytes=packets * 10))
    whole = lb.maps.backend_stats.sums()
    assert whole.shape[0] == 256
    for rows in (0, 1, 4, 201, 256, 10_000):
        part = lb.maps.backend_stats.sums(rows)
        assert part.shape[0] == min(rows, 256)
        assert (part == whole[: min(rows, 256)]).all()


def test_a_balancer_knows_the_rows_it_wrote() -> None:
    lb = Balancer.fake(max_vips=64, max_backends=1024)
    assert lb.rows_in_use() == (None, None)  # nothing written by this process: all may be
    tr = translate(desired_state(3, 4))
    lb.apply(tr.config(Settings(seed="t")))
    vips, slots = lb.rows_in_use()
    assert vips == 3 and slots == 12
    held = {b.vip_id for b in lb.backends().values()}
    assert max(held) < vips and max(lb.backends()) < slots
    lb.apply(DataplaneConfig(settings=Settings(seed="t"), vips=[]))
    assert lb.rows_in_use() == (0, 0)


def test_jiffies_are_read_at_most_once_a_second_and_counted_on_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads = [1000, 5000]
    now = [10.0]
    hz = 250
    monkeypatch.setattr(clock, "_read_jiffies", lambda: reads.pop(0))
    monkeypatch.setattr(clock, "hz", lambda: hz)
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    monkeypatch.setattr(clock, "_read_at", None)
    assert clock.jiffies_now() == 1000
    now[0] += 0.5
    assert clock.jiffies_now() == 1000 + int(0.5 * hz)  # no read: counted on
    now[0] += clock.RESYNC_S
    assert clock.jiffies_now() == 5000 and reads == []  # read again after RESYNC_S
