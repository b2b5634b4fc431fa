"""Which member a flow reaches, computed the way every L4 node computes it: the same
translation to the data plane's VIPs, the same Maglev table, the same flow hash."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.controller.db.models import HealthMonitor, LoadBalancer, Member, Pool, utcnow
from shoal.controller.errors import BadRequest
from shoal.controller.services import desired
from shoal.controller.settings import ControllerSettings
from shoal.dataplane import flowhash, maglev
from shoal.wire.l4 import l4_vips

__all__ = ["trace_flow"]


def trace_flow(
    session: Session,
    lb: LoadBalancer,
    src: str,
    sport: int,
    dport: int,
    protocol: str,
    settings: ControllerSettings,
) -> dict[str, Any]:
    """For an L7 load balancer the answer is the L7 node (l7_node_id) the flow reaches."""
    seed = settings.cluster_seed
    config = json.loads(lb.current_config)
    if not config:
        raise BadRequest(f"load balancer {lb.id} has no configuration")
    health = dict(
        session.execute(
            select(Member.id, Member.health)
            .join(Member.pool)
            .join(HealthMonitor, HealthMonitor.pool_id == Pool.id)
            .where(Pool.load_balancer_id == lb.id)
        ).all()
    )
    proto = protocol.lower()
    l7 = lb.kind == "l7"
    l7_nodes = desired.l7_backends(session, settings, utcnow(), lb.id).get(lb.id) if l7 else None
    for vip in l4_vips(config, health, l7_nodes):
        if vip.port != dport or vip.protocol != proto:
            continue
        names = [(str(b.address), b.weight if b.healthy else 0) for b in vip.spec.backends]
        table = maglev.build_table(names, vip.spec.table_size, seed.encode())
        key = flowhash.flow_key(src, str(vip.spec.address), sport, dport, proto)
        client = ipaddress.ip_address(src)
        if vip.spec.allowed_cidrs and not any(client in n for n in vip.spec.allowed_cidrs):
            return {"verdict": "drop: source not in allowed_cidrs", "listener_id": vip.listener_id}
        h = flowhash.flow_hash(key, flowhash.hash_seed_from(seed), vip.spec.hash == "source_ip")
        slot = h % len(table)
        index = int(table[slot])
        if index < 0:
            return {
                "verdict": "drop: no usable member",
                "listener_id": vip.listener_id,
                "hash": h,
                "slot": slot,
                "table_size": len(table),
            }
        return {
            "verdict": "forward",
            "listener_id": vip.listener_id,
            ("l7_node_id" if l7 else "member_id"): vip.member_ids[index],
            "address": names[index][0],
            "hash": h,
            "slot": slot,
            "table_size": len(table),
            "note": "a new flow; an established one stays on its cached member",
        }
    raise BadRequest(
        f"load balancer {lb.id} has no {protocol} listener on port {dport} served by the L4 tier"
    )
