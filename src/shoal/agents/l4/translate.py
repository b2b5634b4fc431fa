"""The node's desired state (every load balancer's revision and member health) as one data
plane configuration. A load balancer that cannot be programmed is left out and reported with
its reason; the others go ahead. So is one whose VIP lies outside the prefixes the node is
configured to serve: whatever the controller says, the node programs and announces nothing
else (a hijacked or buggy controller cannot make it announce someone else's /32)."""

from __future__ import annotations

import ipaddress
from collections.abc import KeysView, Sequence, Set
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any, TypeVar

from pydantic import ValidationError

from shoal.addresses import IpNetwork, address_refusal
from shoal.dataplane.config import DataplaneConfig, Settings, VipSpec
from shoal.wire.feed import DesiredState, LbState
from shoal.wire.l4 import l4_vips

__all__ = [
    "Cache",
    "Memo",
    "Translation",
    "changed_keys",
    "in_arrival_order",
    "translate",
    "vip_refusal",
]


@dataclass
class Translation:
    vips_by_lb: dict[str, list[VipSpec]] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # load balancer id -> reason
    # From a memo: this answer's number, the one it was derived from, and the load
    # balancers whose entries may differ from that one's (None: not known, look at all).
    gen: int = 0
    base: int = -1
    changed: set[str] | None = None
    _every: KeysView[str] | None = field(default=None, repr=False, compare=False)

    def every(self) -> KeysView[str]:
        """Every translated load balancer, as one object: chosen(every()) is vips_by_lb
        without comparing sets (vips_by_lb is never changed once handed out)."""
        if self._every is None:
            self._every = self.vips_by_lb.keys()
        return self._every

    def chosen(self, lbs: Set[str] | None = None) -> dict[str, list[VipSpec]]:
        if lbs is None or lbs is self._every:
            return self.vips_by_lb
        if len(lbs) == len(self.vips_by_lb) and lbs >= self.vips_by_lb.keys():
            return self.vips_by_lb
        return {k: v for k, v in self.vips_by_lb.items() if k in lbs}

    def changed_in_order(self) -> list[str] | None:
        """The changed load balancers present in vips_by_lb, in its order (None: not known).
        An incremental translation moves what it changed to the end, so they are its tail."""
        if self.changed is None:
            return None
        present = {k for k in self.changed if k in self.vips_by_lb}
        tail = list(islice(reversed(self.vips_by_lb), len(present)))
        return tail[::-1] if present.issuperset(tail) else None

    def config(self, settings: Settings, lbs: Set[str] | None = None) -> DataplaneConfig:
        # Every spec is validated already and translate() keeps VIP keys unique: building
        # without validation keeps a change O(what changed) (validation costs ~150 us a VIP).
        vips = list(chain.from_iterable(self.chosen(lbs).values()))
        return DataplaneConfig.model_construct(settings=settings, vips=vips)

    def copy_as(self, memo: Memo, changed: set[str] | None) -> Translation:
        """This answer as the memo's next one, derived from this one (the same dicts: an
        answer the memo keeps is never changed in place, _incremental copies it first)."""
        memo.gen += 1
        return Translation(
            self.vips_by_lb, self.revisions, self.errors, memo.gen, self.gen, changed
        )

    def handed(self) -> Translation:
        """The memo's answer for a caller, who may add errors: vips_by_lb and revisions
        are shared and read-only (copying them would cost every load balancer)."""
        return Translation(
            self.vips_by_lb,
            self.revisions,
            dict(self.errors),
            self.gen,
            self.base,
            self.changed,
        )

    def copy(self) -> Translation:
        return Translation(
            dict(self.vips_by_lb),
            dict(self.revisions),
            dict(self.errors),
            self.gen,
            self.base,
            self.changed,
        )


V = TypeVar("V")


def changed_keys(before: dict[str, V], after: dict[str, V]) -> tuple[list[str], set[str]]:
    """(keys of after whose value is a new object, keys of before gone from after), found by
    identity with set operations in C: O(keys) but a fraction of a microsecond per key."""
    by_id = dict(zip(map(id, after.values()), after, strict=True))
    fresh = by_id.keys() - set(map(id, before.values()))
    return [by_id[i] for i in fresh], before.keys() - after.keys()


def in_arrival_order(lbs: dict[str, V], touched: set[str], keys: list[str]) -> list[str]:
    """keys (touched load balancers still present) in the order of lbs, from its tail: a
    merge moves what it touches last, so the present ones of `touched` are the last entries."""
    present = sum(1 for k in touched if k in lbs)
    wanted = set(keys)
    tail = list(islice(reversed(lbs), present))
    return [k for k in reversed(tail) if k in wanted]


@dataclass
class Memo:
    """The last translation, for one that costs what changed (translate(memo=...))."""

    lbs: dict[str, LbState] = field(default_factory=dict)
    out: Translation | None = None
    owner: dict[str, str] = field(default_factory=dict)  # VIP key text -> load balancer
    serve: Sequence[IpNetwork] | None = None
    state: DesiredState | None = None  # the object translated last, at version:
    version: int = 0
    gen: int = 0


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


def _key(s: VipSpec) -> str:
    return f"{s.protocol} {s.address} {s.port}"


def _incremental(
    state: DesiredState, serve: Sequence[IpNetwork] | None, cache: Cache, memo: Memo
) -> Translation | None:
    """translate() from the memo, looking only at the load balancers whose LbState objects
    are new or gone; None when that could differ from a whole translation (a clash: which
    load balancer wins one depends on the order of all)."""
    prev = memo.out
    if prev is None or memo.serve is not serve or len(cache) != len(memo.lbs):
        return None
    touched = state.touched_since(memo.version) if memo.state is state else None
    if touched is not None:
        changed = [k for k in touched if k in state.lbs and state.lbs[k] is not memo.lbs.get(k)]
        gone = {k for k in touched if k not in state.lbs and k in memo.lbs}
    else:
        changed, gone = changed_keys(memo.lbs, state.lbs)
    memo.state, memo.version = state, state.version
    if not changed and not gone:
        memo.out = prev.copy_as(memo, set())
        return memo.out
    if len(changed) > 1 and touched is not None:
        changed = in_arrival_order(state.lbs, touched, changed)
    elif len(changed) > 1:
        pos = dict(zip(state.lbs, range(len(state.lbs)), strict=True))
        changed.sort(key=pos.__getitem__)
    # vips_by_lb is copied (the caller keeps the last one to compare with); the revisions
    # and the owners change in place: only this answer's errors read the revisions, and a
    # clash (None) drops the memo's answer, so the full translation that follows rebuilds
    # the owners. Copying them cost ~1 ms each at 10,000 load balancers.
    out = Translation(dict(prev.vips_by_lb), prev.revisions, dict(prev.errors), prev.gen, prev.base)
    owner = memo.owner
    for lb_id in [*gone, *changed]:
        for s in prev.vips_by_lb.get(lb_id, ()):
            owner.pop(_key(s), None)
    # The feed moves a changed load balancer last: so does a whole translation.
    for lb_id in [*gone, *changed]:
        out.vips_by_lb.pop(lb_id, None)
        out.errors.pop(lb_id, None)
        out.revisions.pop(lb_id, None)
    for lb_id in gone:
        cache.pop(lb_id, None)
    for lb_id in changed:
        lb = state.lbs[lb_id]
        out.revisions[lb_id] = lb.revision
        result = _cached(lb, serve, cache)
        if isinstance(result, str):
            out.errors[lb_id] = result
            out.vips_by_lb.pop(lb_id, None)
            continue
        keys = [_key(s) for s in result]
        if any(k in owner for k in keys):
            return None
        owner.update(dict.fromkeys(keys, lb_id))
        out.vips_by_lb[lb_id] = result
        out.errors.pop(lb_id, None)
    for lb_id in gone:
        memo.lbs.pop(lb_id, None)
    for lb_id in changed:
        memo.lbs[lb_id] = state.lbs[lb_id]
    memo.out = out.copy_as(memo, {*changed, *gone})
    return memo.out


def translate(
    desired: DesiredState | dict[str, Any],
    serve: Sequence[IpNetwork] | None = None,
    cache: Cache | None = None,
    memo: Memo | None = None,
) -> Translation:
    """serve: the prefixes this node may program and announce (None: any). With a cache, a
    load balancer whose inputs are unchanged keeps its VipSpec objects (the data plane
    then skips it without comparing); the cache is left holding exactly the load balancers
    of this desired state. With a memo as well (and the same serve object each time), only
    the load balancers whose LbState objects changed are looked at; the caller gets its
    own errors to add to, and vips_by_lb and revisions to read (shared with the memo)."""
    state = DesiredState.of(desired)
    if memo is not None and cache is not None:
        fast = _incremental(state, serve, cache, memo)
        if fast is not None:
            return fast.handed()
        memo.out = None
    out = Translation()
    owner: dict[tuple[Any, int, str], str] = {}
    seen: set[str] = set()
    clashed = False
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
            clashed = True
            out.errors[lb_id] = f"VIP {specs[0].address} port clashes with load balancer {clash}"
            continue
        for s in specs:
            owner[s.key] = lb_id
        out.vips_by_lb[lb_id] = specs
    if cache is not None:
        for gone in set(cache) - seen:
            del cache[gone]
    if memo is not None and cache is not None:
        memo.gen += 1
        out.gen = memo.gen
        if not clashed:
            memo.lbs, memo.serve, memo.out = dict(state.lbs), serve, out.copy()
            memo.state, memo.version = state, state.version
            memo.owner = {_key(s): k for k, specs in out.vips_by_lb.items() for s in specs}
    return out
