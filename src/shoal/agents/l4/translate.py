"""The node's desired state (every load balancer's revision and member health) as one data
plane configuration. A load balancer that cannot be programmed is left out and reported with
its reason; the others go ahead. So is one whose VIP lies outside the prefixes the node is
configured to serve: whatever the controller says, the node programs and announces nothing
else (a hijacked or buggy controller cannot make it announce someone else's /32)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shoal.addresses import IpNetwork, address_refusal
from shoal.dataplane.config import DataplaneConfig, Settings, VipSpec
from shoal.wire.feed import DesiredState, LbState
from shoal.wire.l4 import l4_vips

__all__ = ["Cache", "Translation", "translate", "vip_refusal"]


@dataclass
class Translation:
    vips_by_lb: dict[str, list[VipSpec]] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # load balancer id -> reason

    def config(self, settings: Settings, lbs: set[str] | None = None) -> DataplaneConfig:
        chosen = (
            self.vips_by_lb
            if lbs is None
            else {k: v for k, v in self.vips_by_lb.items() if k in lbs}
        )
        # Every spec is validated already and translate() keeps VIP keys unique: building
        # without validation keeps a change O(what changed) (validation costs ~150 us a VIP).
        return DataplaneConfig.model_construct(
            settings=settings, vips=[v for specs in chosen.values() for v in specs]
        )


def vip_refusal(address: str, serve: Sequence[IpNetwork] | None) -> str | None:
    """Why this node may not program and announce address (None: it may). serve None means
    every prefix: only the special ranges are refused."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"VIP {address!r} is not an IP address"
    if reason := address_refusal(ip):
        return f"VIP {ip} is {reason}"
    if serve is not None and not any(ip in net for net in serve):
        prefixes = ", ".join(str(n) for n in serve) or "none"
        return f"VIP {ip} is outside the prefixes this node serves ({prefixes})"
    return None


Fingerprint = tuple[Any, Any, Any]
# lb id -> (the LbState translated, its fingerprint, the result)
Cache = dict[str, tuple[LbState, Fingerprint, list[VipSpec] | str]]


def _fingerprint(lb: LbState) -> Fingerprint:
    """What a load balancer's VIPs depend on: its revision (bumped by every write), member
    health and L7 placements (which change without a new revision). Compared with ==."""
    return (lb.revision, lb.member_health, lb.l7_nodes)


def _specs(lb: LbState) -> list[VipSpec] | str:
    try:
        vips = l4_vips(lb.config, lb.member_health, lb.l7_nodes)
        return [v.spec for v in vips]
    except (ValidationError, ValueError, KeyError) as exc:
        return f"cannot translate revision {lb.revision}: {exc}"


def _cached(
    lb: LbState, serve: Sequence[IpNetwork] | None, cache: Cache | None
) -> list[VipSpec] | str:
    """The feed keeps an unchanged load balancer's LbState object: an identity check then
    settles it (its refusal included: parsing an address costs more than the check); a
    rebuilt state (a restart, a snapshot) is compared by fingerprint."""
    hit = cache.get(lb.id) if cache is not None else None
    if hit is not None and hit[0] is lb:
        return hit[2]
    fp = _fingerprint(lb)
    result: list[VipSpec] | str
    if refusal := vip_refusal(lb.config.vip_address, serve):
        result = f"not programmed or announced: {refusal}"
    else:
        result = hit[2] if hit is not None and hit[1] == fp else _specs(lb)
    if cache is not None:
        cache[lb.id] = (lb, fp, result)
    return result


def translate(
    desired: DesiredState | dict[str, Any],
    serve: Sequence[IpNetwork] | None = None,
    cache: Cache | None = None,
) -> Translation:
    """serve: the prefixes this node may program and announce (None: any). With a cache, a
    load balancer whose inputs are unchanged keeps its VipSpec objects (the data plane
    then skips it without comparing); the cache is left holding exactly the load balancers
    of this desired state."""
    state = DesiredState.of(desired)
    out = Translation()
    owner: dict[tuple[Any, int, str], str] = {}
    seen: set[str] = set()
    for lb in state.lbs.values():
        lb_id = lb.id
        out.revisions[lb_id] = lb.revision
        seen.add(lb_id)
        result = _cached(lb, serve, cache)
        if isinstance(result, str):
            out.errors[lb_id] = result
            continue
        specs = result
        clash = next((owner[s.key] for s in specs if s.key in owner), None)
        if clash:
            out.errors[lb_id] = f"VIP {specs[0].address} port clashes with load balancer {clash}"
            continue
        for s in specs:
            owner[s.key] = lb_id
        out.vips_by_lb[lb_id] = specs
    if cache is not None:
        for gone in set(cache) - seen:
            del cache[gone]
    return out
