"""Per-member traffic of an L4 load balancer, from what its L4 nodes report per backend
(shoal.wire.report.BackendTraffic, stored in the node's backend_traffic), summed
over the nodes. A backend is one VIP's slot for an address: the VIP's listener (by protocol
and port) names the pool, the pool's member with that address the member.

Two members of one pool with the same address and different ports are one backend in the
data plane (DSR keeps the VIP's port); the traffic goes to the first of them by id."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.controller.db.models import Listener, Member

__all__ = ["L4_MEMBER_KEYS", "member_traffic"]

L4_MEMBER_KEYS = ("bytes_in", "packets_in")


def _listener_key(vip: str) -> tuple[str, int] | None:
    """("tcp", 80) from "tcp://10.0.0.1:80" or "tcp://[2001:db8::1]:80"."""
    protocol, sep, rest = vip.partition("://")
    port = rest.rpartition(":")[2]
    return (protocol, int(port)) if sep and port.isdigit() else None


def member_traffic(
    session: Session, lb_id: str, reports: Iterable[list[dict[str, Any]] | None]
) -> dict[str, dict[str, int]]:
    """member id -> {bytes_in, packets_in}, over every node's reported backends."""
    pools = {
        (li.l4_protocol, li.protocol_port): li.default_pool_id
        for li in session.scalars(select(Listener).where(Listener.load_balancer_id == lb_id))
        if li.default_pool_id
    }
    if not pools:
        return {}
    members: dict[tuple[str, str], str] = {}
    query = select(Member).where(Member.pool_id.in_(set(pools.values()))).order_by(Member.id)
    for m in session.scalars(query):
        members.setdefault((m.pool_id, m.address), m.id)
    out: dict[str, dict[str, int]] = {}
    for backends in reports:
        for b in backends or []:
            if b.get("load_balancer_id") != lb_id:
                continue
            key = _listener_key(str(b.get("vip", "")))
            pool = pools.get(key) if key else None
            member = members.get((pool, str(b.get("address")))) if pool else None
            if member is None:
                continue  # a member removed since, or a listener changed: not charted
            total = out.setdefault(member, dict.fromkeys(L4_MEMBER_KEYS, 0))
            total["bytes_in"] += int(b.get("bytes", 0))
            total["packets_in"] += int(b.get("packets", 0))
    return out
