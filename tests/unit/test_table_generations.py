"""A VIP's table generation (shoal_abi.h: in every backend entry of the VIP, copied into each
session entry) moves exactly when its table changes, whatever the history of creates,
updates, deletes and process restarts; a restart that applies what the maps hold swaps no
table in again, so each previous table (second chance) stays the one before the last real
change. Session entries trust their backend without the SYN marks only under the generation
they were written with, so a generation that failed to move would let an older
connection's entry send a new connection to the old backend."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.dataplane.balancer import Balancer, _address

from .test_incremental_apply import build, config

step = st.tuples(config, st.booleans())  # (desired VIPs, restart the process before)


def tables(lb: Balancer) -> dict[str, tuple[Any, Any, set[int]]]:
    """VIP name -> (its table and its previous table, each slot as (backend id, address),
    and the generations its backends carry)."""
    backends = lb.backends()
    out = {}

    def slots(table: Any) -> Any:
        if table is None:
            return None
        return tuple((int(i), str(_address(backends[int(i)].addr, 4))) for i in table)

    for name, state in lb.vips().items():
        table = lb.maps.tables.read(state.vip_id)
        previous = lb.maps.tables.read_previous(state.vip_id)
        gens = {int(b.table_gen) for b in backends.values() if b.vip_id == state.vip_id}
        out[name] = (slots(table), None if previous is None else tuple(previous), gens)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=7))
def test_the_generation_moves_with_the_table_and_only_with_it(
    steps: list[tuple[list[dict[str, Any]], bool]],
) -> None:
    lb = Balancer.fake(max_vips=8, max_backends=40)
    before = tables(lb)
    for vips, restart in steps:
        if restart:  # a new agent process on the same maps
            lb = Balancer(lb.maps, max_vips=lb.max_vips, max_backends=lb.max_backends)
        lb.apply(build(vips))
        after = tables(lb)
        for name, (table, previous, gens) in after.items():
            assert len(gens) <= 1, f"{name}: backends disagree on the generation {gens}"
            if name not in before:
                continue
            old_table, old_previous, old_gens = before[name]
            if table is None or old_table is None:
                continue  # no table on one side: no session entry can name its pick
            if table == old_table:
                assert gens == old_gens, f"{name}: same table, the generation moved"
                assert previous == old_previous, f"{name}: same table, a new previous one"
            else:
                assert gens != old_gens, f"{name}: a new table under the old generation"
        before = after
