"""From a load balancer's revision (Octavia resources) to the L4 data plane's VIPs. The L4
agent applies exactly this, and the controller's flow trace computes with it, so both agree on
which member a flow reaches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shoal.dataplane import maglev
from shoal.dataplane.config import BackendSpec, VipSpec
from shoal.wire.config import LoadBalancerConfig, MemberConfig, PoolConfig
from shoal.wire.feed import L7Backend

__all__ = ["L4Vip", "l4_vips"]


@dataclass(frozen=True)
class L4Vip:
    spec: VipSpec
    listener_id: str
    member_ids: list[str]  # in the order of spec.backends

    @property
    def port(self) -> int:
        return self.spec.port

    @property
    def protocol(self) -> str:
        return self.spec.protocol


def _raw(value: Any) -> Any:
    """A wire value the data plane's models parse and check themselves (addresses,
    prefixes, protocols)."""
    return value


def _backends(
    pool: PoolConfig | None, health: dict[str, str]
) -> tuple[list[BackendSpec], list[str]]:
    if pool is None or not pool.admin_state_up:
        return [], []
    members = [m for m in pool.members if m.admin_state_up]
    hm = pool.healthmonitor
    monitored = hm is not None and hm.admin_state_up

    def healthy(m: MemberConfig) -> bool:
        return not monitored or health.get(m.id, "UNKNOWN") != "DOWN"

    # Backup members take new flows only when no primary can.
    primaries_up = any(healthy(m) and m.weight > 0 for m in members if not m.backup)
    specs, ids = [], []
    for m in sorted(members, key=lambda m: m.id):
        weight = 0 if (m.backup and primaries_up) else m.weight
        specs.append(BackendSpec(address=_raw(m.address), weight=weight, healthy=healthy(m)))
        ids.append(m.id)
    return specs, ids


def _l7_backends(l7_nodes: list[L7Backend]) -> tuple[list[BackendSpec], list[str]]:
    """An L7 load balancer's VIP goes to the L7 nodes it is placed on; a draining placement
    keeps the flows it has (weight 0) and takes no new ones, and so does a pending one (the
    node has not applied it yet)."""
    specs, ids = [], []
    for n in sorted(l7_nodes, key=lambda n: n.id):
        weight = 1 if n.state == "ACTIVE" else 0
        specs.append(BackendSpec(address=_raw(n.address), weight=weight, healthy=n.healthy))
        ids.append(n.id)
    return specs, ids


def l4_vips(
    config: LoadBalancerConfig | dict[str, Any] | None,
    health: dict[str, str],
    l7_nodes: Sequence[L7Backend | dict[str, Any]] | None = None,
) -> list[L4Vip]:
    """The VIPs an L4 node programs for this load balancer (none when it is disabled). For
    an L7 load balancer, member_ids are the ids of the L7 nodes behind the VIP. A listener's
    allowed_cidrs become its VIP's client prefixes, dropped in XDP (an L7 listener's are
    checked again by HAProxy)."""
    if not config:
        return []
    if isinstance(config, dict):
        config = LoadBalancerConfig.model_validate(config)
    if not config.admin_state_up:
        return []
    listeners = sorted(config.listeners, key=lambda x: x.id)
    if config.kind == "l7":
        nodes = [L7Backend.model_validate(n) for n in l7_nodes or []]
        backends, ids = _l7_backends(nodes)
        return [
            L4Vip(
                VipSpec(
                    address=_raw(config.vip_address),
                    port=li.protocol_port,
                    protocol="tcp",
                    backends=backends,
                    allowed_cidrs=_raw(li.allowed_cidrs or None),
                    table_size=maglev.table_size_for(len(backends)),
                ),
                li.id,
                ids,
            )
            for li in listeners
            if li.admin_state_up
        ]
    pools = {p.id: p for p in config.pools}
    out = []
    for li in listeners:
        if not li.admin_state_up or li.protocol not in ("TCP", "UDP"):
            continue
        pool = pools.get(li.default_pool_id) if li.default_pool_id else None
        backends, ids = _backends(pool, health)
        source_hash = pool is not None and (
            pool.lb_algorithm == "SOURCE_IP"
            or (pool.session_persistence or {}).get("type") == "SOURCE_IP"
        )
        spec = VipSpec(
            address=_raw(config.vip_address),
            port=li.protocol_port,
            protocol=_raw(li.protocol.lower()),
            hash="source_ip" if source_hash else "5tuple",
            backends=backends,
            allowed_cidrs=_raw(li.allowed_cidrs or None),
            table_size=maglev.table_size_for(len(backends)),
        )
        out.append(L4Vip(spec, li.id, ids))
    return out
