"""Member addresses a load balancer may send traffic to: ordinary unicast (no loopback,
multicast, broadcast, link-local or reserved range, no zone id), outside every VIP pool (the
traffic would loop back into the L4 tier, or reach another tenant's VIP), and, on an L4 load
balancer, of the VIP's family.

Why the family rule on L4 only: the L4 tier encapsulates in the backend's family, so an IPv6
member of an IPv4 VIP gets IPv4-in-IPv6 and an IPv4 member of an IPv6 VIP IPv6-in-IPv4. The
first needs bpf_skb_adjust_room's DECAP_L3 flags (missing on Debian 12's 6.1 kernel) or a
kernel ip6tnl on the member; the second is decapsulated by Shoal's tc program only in GUE
mode, a per-node setting the controller cannot see. Neither is something a tenant's server can
be assumed to do. HAProxy (L7) opens its own connections, in any family."""

from __future__ import annotations

import ipaddress

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.addresses import IpNetwork, address_refusal
from shoal.controller.db.models import LoadBalancer, Member, VipPool
from shoal.controller.errors import BadRequest
from shoal.controller.services import vips

__all__ = ["check_members"]


def _refusal(
    pools: list[tuple[IpNetwork, VipPool]], lb: LoadBalancer, text: str, monitor: bool
) -> str | None:
    ip = ipaddress.ip_address(text)
    if reason := address_refusal(ip):
        return f"{ip} is {reason}"
    pool = next((p for net, p in pools if ip.version == net.version and ip in net), None)
    if pool is not None:
        # Name the pool only to a project that may use it: others learn no one's ranges.
        mine = pool.shared or lb.project_id in (pool.project_ids or [])
        named = f"VIP pool {pool.name} ({pool.cidr})" if mine else "a VIP pool"
        return f"{ip} lies in {named}: members are real servers, not VIPs"
    vip = ipaddress.ip_address(lb.vip_address)
    if lb.kind == "l4" and not monitor and ip.version != vip.version:
        return (
            f"{ip} is IPv{ip.version} and the VIP {vip} IPv{vip.version}: an L4 load "
            "balancer's members are of its VIP's family"
        )
    return None


def check_members(session: Session, lb: LoadBalancer) -> None:
    """400 naming the first member whose address or monitor_address may not be used."""
    vip_pools = [(vips.network_of(p), p) for p in session.scalars(select(VipPool))]
    for pool in lb.pools:
        for m in pool.members:
            for field, value in (("address", m.address), ("monitor_address", m.monitor_address)):
                if value is None:
                    continue
                reason = _refusal(vip_pools, lb, value, field == "monitor_address")
                if reason:
                    raise BadRequest(_named(m, pool.name or pool.id, field, reason))


def _named(m: Member, pool: str, field: str, reason: str) -> str:
    host = f"[{m.address}]" if ":" in m.address else m.address
    who = f"member {m.name + ' ' if m.name else ''}{host}:{m.protocol_port} of pool {pool}"
    return f"{who}: {field} {reason}"
