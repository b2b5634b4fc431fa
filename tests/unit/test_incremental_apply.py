"""The incremental apply reaches exactly the maps a full apply reaches: from any state A
(reached through random creates, updates, deletes and process restarts), applying B leaves
the same VIPs, backends, tables (slot by slot, by backend address), lists and filter as
applying B to an empty data plane."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.dataplane import abi
from shoal.dataplane.balancer import Balancer, _address
from shoal.dataplane.config import DataplaneConfig, Settings, VipSpec

ADDRESSES = [f"192.0.2.{i}" for i in range(1, 7)]
BACKENDS = [f"10.1.0.{i}" for i in range(1, 9)]

backend = st.fixed_dictionaries(
    {
        "address": st.sampled_from(BACKENDS),
        "weight": st.sampled_from([0, 1, 1, 3]),
        "healthy": st.booleans(),
    }
)
vip = st.fixed_dictionaries(
    {
        "address": st.sampled_from(ADDRESSES),
        "port": st.sampled_from([80, 443]),
        "protocol": st.sampled_from(["tcp", "udp"]),
        "encap": st.sampled_from(["ipip", "gue"]),
        "table_size": st.sampled_from([7, 13, 251]),
        "backends": st.lists(backend, max_size=5, unique_by=lambda b: b["address"]),
        "allowed_cidrs": st.one_of(
            st.none(), st.lists(st.sampled_from(["198.51.100.0/24", "203.0.113.7/32"]), max_size=2)
        ),
    }
)
config = st.lists(vip, max_size=6, unique_by=lambda v: (v["address"], v["port"], v["protocol"]))
step = st.tuples(config, st.booleans())  # (desired VIPs, restart the process before)


def build(vips: list[dict[str, Any]]) -> DataplaneConfig:
    return DataplaneConfig(
        settings=Settings(seed="prop"), vips=[VipSpec.model_validate(v) for v in vips]
    )


def observed(lb: Balancer) -> dict[str, Any]:
    """The maps' meaning, without ids (which depend on history)."""
    backends = lb.backends()
    out: dict[str, Any] = {}
    for name, state in lb.vips().items():
        table = lb.maps.tables.read(state.vip_id)
        slots = (
            None
            if table is None
            else [str(_address(backends[int(i)].addr, backends[int(i)].family)) for i in table]
        )
        own = sorted(
            (str(_address(b.addr, b.family)), int(b.weight), int(b.flags), int(b.vip_flags))
            for b in backends.values()
            if b.vip_id == state.vip_id
        )
        acl = lb.maps.acl.read().get(lb.maps.acl.active_id(state.vip_id), set())
        out[name] = (
            state.flags,
            own,
            slots,
            sorted(map(str, acl)) if state.flags & abi.VIP_F_ACL else None,
        )
    words = [int(v.value) for _, v in lb.maps.vip_filter.items()]
    cfg = lb.maps.config.get(0)
    assert cfg is not None
    cfg.nh_epoch = 0
    return {
        "vips": out,
        "backends": len(backends),
        "filter": words,
        "config": bytes(cfg),
        "acl4": len(lb.maps.acl.trie4),
        "acl6": len(lb.maps.acl.trie6),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=6), final=config)
def test_incremental_equals_full(
    steps: list[tuple[list[dict[str, Any]], bool]], final: Any
) -> None:
    lb = Balancer.fake(max_vips=8, max_backends=40)
    for vips, restart in steps:
        if restart:  # a new agent process on the same pinned maps
            lb = Balancer(lb.maps, max_vips=lb.max_vips, max_backends=lb.max_backends)
        lb.apply(build(vips))
    lb.apply(build(final))
    fresh = Balancer.fake(max_vips=8, max_backends=40)
    fresh.apply(build(final))
    assert observed(lb) == observed(fresh)
    # And the mirror it planned against is what the maps hold.
    again = Balancer(lb.maps, max_vips=lb.max_vips, max_backends=lb.max_backends)
    assert again.apply(build(final)).summary() == "0 VIP(s) added, 0 changed, 0 removed"


def _fits(vips: list[dict[str, Any]]) -> bool:
    return sum(len(v["backends"]) for v in vips) <= 10


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(config.filter(_fits), min_size=1, max_size=5), final=config.filter(_fits))
def test_incremental_equals_full_at_full_capacity(
    steps: list[list[dict[str, Any]]], final: list[dict[str, Any]]
) -> None:
    """Exactly as many ids as the largest config needs: swaps at full take two steps."""
    lb = Balancer.fake(max_vips=6, max_backends=10)
    for vips in [*steps, final]:
        lb.apply(build(vips))
    fresh = Balancer.fake(max_vips=6, max_backends=10)
    fresh.apply(build(final))
    assert observed(lb) == observed(fresh)


def test_an_unchanged_vip_costs_no_table_build_and_no_write() -> None:
    lb = Balancer.fake(max_vips=8, max_backends=40)
    vips = [
        {"address": a, "port": 80, "protocol": "tcp", "backends": [{"address": b}]}
        for a, b in zip(ADDRESSES, BACKENDS, strict=False)
    ]
    first = build(vips)
    lb.apply(first)
    builds, swaps = lb.table_cache.builds, lb.maps.tables.swaps  # type: ignore[attr-defined]
    vips[0]["backends"][0]["weight"] = 0
    report = lb.apply(build(vips))
    assert report.changed == ["tcp://192.0.2.1:80"] and not report.added + report.removed
    assert lb.table_cache.builds == builds + 1
    assert lb.maps.tables.remove is not None
    assert lb.maps.tables.swaps == swaps  # type: ignore[attr-defined]  # drained: no table
    lb.apply(first)  # rollback: the old table comes from the cache
    assert lb.table_cache.builds == builds + 1 and lb.table_cache.hits >= 1
