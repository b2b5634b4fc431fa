"""An apply that settles unchanged specs by identity (Balancer._plan_changes, the agent's
path: unchanged load balancers keep their VipSpec objects) gives exactly what planning every
VIP gives: after any sequence of random changes (specs kept as the same objects, replaced
by new ones with the same or other content, dropped, added), both balancers hold the same
maps byte for byte, report the same digests and changes, and refuse the same configs."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.dataplane import abi
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.config import DataplaneConfig, Settings, VipSpec
from shoal.errors import ConfigError

from .test_incremental_apply import observed, vip

# Per step: for each of up to 8 VIP positions, keep the spec object, replace it with a new
# object of the same content, with a new random spec, or drop it; then maybe add some.
action = st.sampled_from(["keep", "keep", "keep", "copy", "new", "drop"])
step = st.tuples(
    st.lists(st.tuples(action, vip), min_size=8, max_size=8),
    st.lists(vip, max_size=2),
    st.booleans(),  # the settings change (a new seed)
)


def raw(lb: Balancer) -> dict[str, Any]:
    """Every map the apply writes, as bytes, ids included."""
    tables = {}
    for _, st_ in lb.vips().items():
        table = lb.maps.tables.read(st_.vip_id)
        tables[st_.vip_id] = None if table is None else [int(i) for i in table]
    cfg = lb.maps.config.get(0)
    return {
        "vips": sorted((bytes(k), bytes(v)) for k, v in lb.maps.vips.items()),
        "backends": sorted((int(k.value), bytes(v)) for k, v in lb.maps.backends.items()),
        "tables": tables,
        "filter": [int(v.value) for _, v in lb.maps.vip_filter.items()],
        "acl": {k: sorted(map(str, v)) for k, v in lb.maps.acl.read().items()},
        "config": None if cfg is None else bytes(cfg),
    }


def attempt(lb: Balancer, config: DataplaneConfig) -> Any:
    try:
        report = lb.apply(config)
    except ConfigError as exc:
        return ("refused", str(exc))
    return (
        sorted(report.added),
        sorted(report.changed),
        sorted(report.removed),
        report.digests,
    )


def unique(specs: list[VipSpec]) -> list[VipSpec]:
    seen: set[Any] = set()
    out = []
    for s in specs:
        if s.key not in seen:
            seen.add(s.key)
            out.append(s)
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=6), capacity=st.sampled_from([(8, 40), (6, 10)]))
def test_by_identity_equals_planning_every_vip(
    steps: list[tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]], bool]],
    capacity: tuple[int, int],
) -> None:
    max_vips, max_backends = capacity
    fast = Balancer.fake(max_vips=max_vips, max_backends=max_backends)
    full = Balancer.fake(max_vips=max_vips, max_backends=max_backends)
    full.incremental = False
    specs: list[VipSpec | None] = [None] * 8
    seed = "prop"
    for actions, added, reseed in steps:
        if reseed:
            seed = "other" if seed == "prop" else "prop"
        for i, (what, doc) in enumerate(actions):
            spec = specs[i]
            if what == "new" or (spec is None and what != "drop"):
                specs[i] = VipSpec.model_validate(doc)
            elif what == "copy" and spec is not None:
                specs[i] = VipSpec.model_validate(spec.model_dump())
            elif what == "drop":
                specs[i] = None
        extra = [VipSpec.model_validate(d) for d in added]
        vips = unique([s for s in specs if s is not None] + extra)
        config = DataplaneConfig.model_construct(settings=Settings(seed=seed), vips=vips)
        assert attempt(fast, config) == attempt(full, config)
        assert raw(fast) == raw(full)
        assert observed(fast) == observed(full)


def test_an_unchanged_config_plans_nothing() -> None:
    lb = Balancer.fake(max_vips=64, max_backends=256)
    vips = [
        VipSpec(
            address=ipaddress.ip_address(f"192.0.2.{i + 1}"),
            port=80,
            protocol="tcp",
            table_size=13,
            backends=[{"address": f"10.0.{i}.1"}],  # type: ignore[list-item]
        )
        for i in range(20)
    ]
    config = DataplaneConfig(settings=Settings(seed="s"), vips=vips)
    lb.apply(config)
    before = raw(lb)
    report = lb.apply(DataplaneConfig.model_construct(settings=config.settings, vips=list(vips)))
    assert report.summary() == "0 VIP(s) added, 0 changed, 0 removed"
    assert len(report.digests) == 20
    after = raw(lb)
    assert abi.Config.from_buffer_copy(after.pop("config") or b"").nh_epoch == 2
    before.pop("config")
    assert after == before
