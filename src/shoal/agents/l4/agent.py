"""The L4 agent: registers its node, long-polls the controller, programs the XDP data plane
(whole configuration, atomic per VIP), announces the VIPs it serves through BGP, runs the
health checks it is assigned, and reports the applied position, per-load-balancer errors,
table digests, counters and flood-mode events.

Reconcile by level: the feed's answers are folded into the complete desired state, and
the data plane is made to hold exactly that, at the cost of what changed (load balancers
the answer did not touch keep their objects and are not translated again, VIPs whose inputs
are unchanged are not written). The agent keeps its feed position and state on disk, so a
restart asks only for what changed meanwhile. When the controller cannot be reached the data
plane keeps its last good state (it lives in the kernel, pinned) and the agent retries."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shoal import __version__, netns
from shoal.addresses import IpNetwork, parse_network
from shoal.agents.api import AgentApi, NodeInfo
from shoal.agents.bgp import NullSpeaker, Speaker
from shoal.agents.birdstate import BirdState, routing_state
from shoal.agents.health import HealthScheduler
from shoal.agents.l4.l7watch import L7Watch, mark_dead
from shoal.agents.l4.side import SideParts
from shoal.agents.l4.translate import Cache, Memo, Translation, changed_keys, translate
from shoal.agents.loop import AgentLoop
from shoal.agents.report_delta import ReportBody
from shoal.dataplane import libbpf as bpf
from shoal.dataplane import loader
from shoal.dataplane.balancer import Balancer, FloodStatus, SpecChanges
from shoal.dataplane.budget import NodePlan, total_bytes
from shoal.dataplane.config import Settings, VipSpec
from shoal.errors import ShoalError
from shoal.wire.feed import DesiredState
from shoal.wire.report import MAX_BACKENDS, BackendTraffic, RoutingState

__all__ = ["L4Agent", "L4AgentConfig"]

Need = tuple[int, int, int, int]  # VIPs, backends, IPv4 and IPv6 allowed_cidrs

log = logging.getLogger("shoal.agent.l4")


@dataclass
class L4AgentConfig:
    controller: str
    token: str
    name: str
    interface: str
    cluster: str = "default"
    netns: str | None = None
    instance: str | None = None  # data plane instance (pins); default: the node name
    xdp_mode: str = "auto"
    session_cache_size: int = 1 << 20
    max_vips: int = 4096
    max_backends: int = 65536
    dataplane: dict[str, Any] = field(default_factory=dict)  # Settings fields except seed
    poll_wait: float = 25.0
    state_dir: Path = Path("/var/lib/shoal/agent")
    address: str | None = None
    # The VIP prefixes this node may program and announce; None: any (only the special ranges
    # are refused). The CLI makes the operator choose.
    serve_prefixes: list[str] | None = None
    # The node's own check of the L7 nodes it forwards to (l7watch.py): a TCP connect to
    # each one's monitor endpoint every l7_check_interval seconds (0: off), out of this
    # node's data plane after two failures in a row.
    l7_check_interval: float = 0.1
    l7_check_timeout: float = 0.15
    l7_monitor_port: int = 8404


class L4Agent(AgentLoop):
    role = "l4"
    keeps_position = True

    # BIRD is asked at most this often for the report (two birdc calls).
    routing_every = 5.0

    def __init__(
        self,
        config: L4AgentConfig,
        api: AgentApi,
        speaker: Speaker | None = None,
        bird: BirdState | None = None,
    ) -> None:
        super().__init__(
            api, config.state_dir / f"{config.name}.desired.json", config.poll_wait, log
        )
        self.cfg = config
        self.speaker = speaker or NullSpeaker()
        self.bird = bird  # the node's BIRD, read for the report (None: no BIRD)
        self._routing: tuple[float, RoutingState] | None = None
        self.instance = config.instance or config.name
        self.serve: list[IpNetwork] | None = (
            None
            if config.serve_prefixes is None
            else [parse_network(p) for p in config.serve_prefixes]
        )
        self.lb: Balancer | None = None
        self.health = HealthScheduler()
        self.applied: Set[str] = set()  # load balancers in the data plane now
        self.vip_owner: dict[str, str] = {}  # VIP name -> load balancer id
        self.listener_of: dict[str, str] = {}  # VIP name -> listener id
        self.errors: list[dict[str, Any]] = []
        self.digests: dict[str, dict[str, str]] = {}
        self.owned_gen = 0  # bumped whenever vip_owner or digests may have changed
        self.draining = False
        self.dataplane_ok = False
        self._flood_active = False
        self._flood_entries: int | None = None  # the data plane's count at the last check
        self._pending_events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._translated: Cache = {}
        self._needs: dict[str, tuple[list[VipSpec], Need]] = {}
        # Kept so that a change costs what it changes: the last translation, the specs _fit
        # last counted and their totals, the specs applied by load balancer, and how many
        # applied VIPs each announced address has.
        self._memo = Memo()
        self._fit_specs: dict[str, list[VipSpec]] = {}
        self._fit_totals: list[int] = [0, 0, 0, 0]
        self._fit_gen = -1
        self._held_gen = -1  # the translation _held is all of (-1: none)
        self._held: dict[str, list[VipSpec]] = {}
        self._held_settings: Settings | None = None
        self._addresses: dict[str, int] = {}
        self._addresses_moved = True  # an address came or went since the last announcement
        self._announced: tuple[bool, bool] | None = None  # (draining, data plane ok) then
        self._side = SideParts(config.l7_monitor_port)  # checks and L7 targets per LB
        # apply() runs on the main loop and, when an L7 node's health flips, on the watch.
        self._apply_lock = threading.RLock()
        self._desired: DesiredState | None = None
        self.l7watch = L7Watch(
            self._l7_changed,
            interval=config.l7_check_interval or 1.0,
            timeout=config.l7_check_timeout,
        )

    # ---- data plane ------------------------------------------------------------------------

    def ensure_dataplane(self) -> None:
        """Loads the program on the pinned maps (keeping sessions across restarts) and attaches
        it, replacing any running version in place."""
        if self.lb is None:
            check = Balancer.adopt(self.instance, self.cfg.interface, netns_name=self.cfg.netns)
            if check.adopted or check.diverged:
                self._pending_events.append(
                    {
                        "kind": "dataplane_maps_diverged",
                        "severity": "error" if check.diverged else "warning",
                        "message": f"{self.cfg.name}: the running XDP program used maps other "
                        f"than the pins; adopted {check.adopted or 'none'}, "
                        f"not adoptable {check.diverged or 'none'}",
                    }
                )
            self.lb = Balancer.load(
                self.instance,
                session_cache_size=self.cfg.session_cache_size,
                max_vips=self.cfg.max_vips,
                max_backends=self.cfg.max_backends,
            )
            plan = NodePlan(
                vips=self.cfg.max_vips,
                backends=self.cfg.max_backends,
                sessions=self.cfg.session_cache_size,
                cpus=bpf.lib().ncpus,
            )
            log.info(
                "data plane maps: %.0f MiB at most (%d VIPs, %d backends); session cache "
                "%d entries, at most %d per CPU (per-CPU LRU lists)",
                total_bytes(plan) / 2**20,
                plan.vips,
                plan.backends,
                plan.sessions,
                plan.sessions_per_cpu,
            )
        self.lb.attach(self.cfg.interface, netns_name=self.cfg.netns, mode=self.cfg.xdp_mode)
        self.dataplane_ok = True

    def dataplane_attached(self) -> bool:
        with netns.entered(self.cfg.netns):
            return loader.xdp_prog_id(netns.ifindex(self.cfg.interface)) != 0

    def settings(self, seed: str) -> Settings:
        return Settings.model_validate({**self.cfg.dataplane, "seed": seed})

    # ---- applying ----------------------------------------------------------------------------

    def _need(self, lb_id: str, specs: list[VipSpec]) -> Need:
        """(VIPs, backends, IPv4 prefixes, IPv6 prefixes) of a load balancer, kept while its
        translated specs are the same objects."""
        hit = self._needs.get(lb_id)
        if hit is not None and hit[0] is specs:
            return hit[1]
        p4 = sum(len(s.allowed_cidrs or []) for s in specs if s.address.version == 4)
        p6 = sum(len(s.allowed_cidrs or []) for s in specs if s.address.version == 6)
        need = (len(specs), sum(len(s.backends) for s in specs), p4, p6)
        self._needs[lb_id] = (specs, need)
        return need

    def _fit(self, tr: Translation) -> Set[str]:
        """The load balancers that fit the data plane's capacity: those it serves already
        first (also after a restart: their VIPs are in the maps), then the smallest, so one
        oversized newcomer cannot push out several others; the rest are reported, not
        half-applied."""
        assert self.lb is not None
        lb = self.lb
        # Running totals: only the load balancers whose specs are new objects are counted.
        if tr.changed is not None and tr.base == self._fit_gen:
            changed, gone = _split(tr.changed, tr.vips_by_lb, self._fit_specs)
        else:
            changed, gone = changed_keys(self._fit_specs, tr.vips_by_lb)
        self._fit_gen = tr.gen
        totals = list(self._fit_totals)
        for k in [*gone, *changed]:
            hit = self._needs.pop(k, None)
            if hit is not None:
                totals = [t - n for t, n in zip(totals, hit[1], strict=True)]
        for k in changed:
            totals = [t + n for t, n in zip(totals, self._need(k, tr.vips_by_lb[k]), strict=True)]
        self._fit_specs, self._fit_totals = tr.vips_by_lb, totals  # read-only: no copy
        # Half the ACL tries: a changed list is staged beside the old one before the switch.
        acl_room = lb.maps.acl.capacity() // 2
        room = (lb.max_vips, lb.max_backends, acl_room, acl_room)
        if all(t <= r for t, r in zip(totals, room, strict=True)):
            return tr.every()  # everything fits: no ranking needed, no set built
        needs = {k: self._needs[k][1] for k in tr.vips_by_lb}

        def rank(k: str) -> tuple[bool, int, str]:
            served = k in self.applied or any(lb.holds(s) for s in tr.vips_by_lb[k])
            return (not served, needs[k][0] + needs[k][1], k)

        chosen: set[str] = set()
        used = [0, 0, 0, 0]
        for lb_id in sorted(needs, key=rank):
            need = needs[lb_id]
            if any(u + n > r for u, n, r in zip(used, need, room, strict=True)):
                left = [r - u for u, r in zip(used, room, strict=True)]
                tr.errors[lb_id] = (
                    f"data plane full: needs {need[0]} VIP(s), {need[1]} backend(s), "
                    f"{need[2] + need[3]} allowed_cidrs; {left[0]} VIPs, {left[1]} backends, "
                    f"{min(left[2], left[3])} allowed_cidrs left"
                )
                continue
            chosen.add(lb_id)
            used = [u + n for u, n in zip(used, need, strict=True)]
        return chosen

    def apply(self, desired: DesiredState | dict[str, Any]) -> None:
        with self._apply_lock:
            desired = DesiredState.of(desired)
            self._desired = desired
            # Checks and L7 targets first: they do not depend on what the data plane takes.
            side = self._side.delta(desired)
            if side.checks or side.gone:
                self.health.replace(side.checks, side.gone)
            if self.cfg.l7_check_interval and side.targets is not None:
                self.l7watch.update(side.targets)
            self._apply(mark_dead(desired, self.l7watch.dead()))

    def _l7_changed(self, dead: set[str]) -> None:
        """The watch saw an L7 node die or come back: apply the last desired state again
        with its verdict, at once (on the watch's thread)."""
        log.warning("L7 nodes unreachable from this node: %s", sorted(dead) or "none")
        self._pending_events.append(
            {
                "kind": "l7_nodes_unreachable",
                "severity": "warning" if dead else "info",
                "message": f"{self.cfg.name}: L7 nodes out of this node's data plane: "
                f"{', '.join(sorted(dead)) or 'none'}",
                "detail": {"node_ids": sorted(dead)},
            }
        )
        with self._apply_lock:
            if self._desired is not None and self.lb is not None:
                self.apply(self._desired)

    def _apply(self, desired: DesiredState) -> None:
        assert self.lb is not None
        tr = translate(desired, self.serve, self._translated, self._memo)
        chosen = self._fit(tr)
        settings = self.settings(desired.settings.seed)
        config = tr.config(settings, chosen)
        try:
            report = self.lb.apply(config, self._spec_changes(tr, chosen))
        except ShoalError as exc:
            # _fit plans what the data plane takes, so this is a defect or a full ACL trie
            # mid-change: keep what was applied, report the newcomers, never stop the loop.
            for lb_id in chosen - self.applied:
                tr.errors[lb_id] = f"data plane full: {exc}"
            chosen &= self.applied
            config = tr.config(settings, chosen)
            report = self.lb.apply(config)
        held = tr.chosen(chosen)
        if tr.changed is not None and tr.base == self._held_gen and held is tr.vips_by_lb:
            diff: tuple[list[str], set[str]] | None = _split(tr.changed, held, self._held)
        else:
            diff = None
        self._held_gen = tr.gen if held is tr.vips_by_lb else -1
        vip_owner, digests = self._held_parts(held, settings, report.digests, diff)
        errors = [
            {"load_balancer_id": k, "revision": tr.revisions[k], "reason": v}
            for k, v in tr.errors.items()
        ]
        with self._lock:
            self.applied, self.vip_owner, self.digests, self.errors = (
                chosen,
                vip_owner,
                digests,
                errors,
            )
            self.listener_of = {}
            self.owned_gen += 1  # metrics keep their labels until this moves
        self.draining = desired.node.admin_state == "DRAINING"
        # Only when something moved: the speaker compares (and BIRD's parses) every address.
        now = (self.draining, self.dataplane_ok)
        if self._addresses_moved or self._announced != now:
            self._announced = None  # until the speaker took it
            self._announce(set(self._addresses))
            self._announced, self._addresses_moved = now, False
        if report.added or report.changed or report.removed:
            log.info("applied seq %s: %s", desired.seq, report.summary())

    def _spec_changes(self, tr: Translation, chosen: Set[str]) -> SpecChanges | None:
        """What the data plane needs to look at (Balancer.apply): the specs of the load
        balancers changed since the last apply, when that apply held every translated one
        (its dict is self._held) and this one holds every translated one too."""
        if chosen is not tr.every() or tr.base != self._held_gen or self._held_gen < 0:
            return None
        order = tr.changed_in_order()
        if order is None or tr.changed is None:
            return None
        held, now = self._held, tr.vips_by_lb
        return SpecChanges(
            new=[s for k in order for s in now[k]],
            old=[s for k in tr.changed for s in held.get(k, ())],
        )

    def _held_parts(
        self,
        held: dict[str, list[VipSpec]],
        settings: Settings,
        table_digests: dict[str, str],
        diff: tuple[list[str], set[str]] | None = None,
    ) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        """(VIP name -> load balancer, load balancer -> VIP name -> table digest) of what the
        data plane now holds, and the count of applied VIPs per address (announcements),
        from the last ones: only the load balancers whose specs are new objects are looked
        at (a VIP's digest changes only with its spec, or with the settings: then all)."""
        if settings != self._held_settings:
            self._held, self._held_settings = {}, settings
            with self._lock:
                self.reports.touch(self.digests)  # every one goes, or comes back new
                self.vip_owner, self.digests, self._addresses = {}, {}, {}
            diff, self._addresses_moved = None, True
        changed, gone = diff if diff is not None else changed_keys(self._held, held)
        # In place, under the lock ownership() reads with: a copy would cost every VIP.
        with self._lock:
            self._held_change(held, table_digests, changed, gone)
        self._held = held  # the translation's (read-only) or chosen's own dict
        return self.vip_owner, self.digests

    def _held_change(
        self,
        held: dict[str, list[VipSpec]],
        table_digests: dict[str, str],
        changed: list[str],
        gone: set[str],
    ) -> None:
        vip_owner, digests, addresses = self.vip_owner, self.digests, self._addresses
        self.reports.touch(gone)
        self.reports.touch(changed)
        # A changed load balancer's addresses go and come back: only those that stay gone,
        # or that are new, move the announcement.
        dropped: set[str] = set()
        for lb_id in [*gone, *changed]:
            digests.pop(lb_id, None)
            for s in self._held.get(lb_id, ()):
                vip_owner.pop(s.name, None)
                address = str(s.address)
                addresses[address] -= 1
                if not addresses[address]:
                    del addresses[address]
                    dropped.add(address)
        for lb_id in changed:
            mine: dict[str, str] = {}
            for s in held[lb_id]:
                vip_owner[s.name] = lb_id
                address = str(s.address)
                count = addresses.get(address, 0)
                addresses[address] = count + 1
                if not count and address not in dropped:
                    self._addresses_moved = True
                if (digest := table_digests.get(s.name)) is not None:
                    mine[s.name] = digest
            if mine:
                digests[lb_id] = mine
        if any(a not in addresses for a in dropped):
            self._addresses_moved = True

    def update_announcements(self, vips: list[Any] | None = None) -> None:
        """Announce what this node serves, unless it is draining or has lost its data plane."""
        assert self.lb is not None
        addresses = {str(v.address) for v in (vips if vips is not None else [])}
        if vips is None:
            addresses = {
                name.split("://")[1].rsplit(":", 1)[0].strip("[]") for name in self.lb.vips()
            }
        self._announced = None  # the next apply announces its own set again
        self._announce(addresses)

    def _announce(self, addresses: set[str]) -> None:
        if self.draining or not self.dataplane_ok:
            addresses = set()
        if self.speaker.announce(addresses):
            log.info(
                "announcing %d VIP(s)%s", len(addresses), " (draining)" if self.draining else ""
            )

    # ---- reporting ---------------------------------------------------------------------------

    def counters(self, per_lb_too: bool = True) -> dict[str, Any]:
        """per_lb_too: with traffic per load balancer (a batch read of the VIP counters and a
        lookup per VIP that carried any: every few seconds, not with every change; the
        controller keeps the last)."""
        assert self.lb is not None
        flood = self.lb.flood_status()
        base = {
            "dataplane": self.lb.counters(),
            "flood": {
                "active": flood.active,
                "entries": flood.entries,
                "exits": flood.exits,
                "rate_per_cpu": flood.rate,
            },
        }
        if not per_lb_too:
            return base
        per_lb: dict[str, dict[str, Any]] = {}
        vip_rows, _ = self.lb.rows_in_use()
        vip_stats = self.lb.maps.vip_stats.sums(vip_rows)  # one batch read, not one per VIP
        busy = _carried_traffic(vip_stats)  # names and owners looked up for these only
        if busy:
            names = {vip_id: name for name, vip_id in self.lb.vip_ids().items()}
            with self._lock:
                owned = [(self.vip_owner.get(names.get(v, "")), p, b) for v, p, b in busy]
            for owner, packets, nbytes in owned:
                if owner is None:
                    continue
                entry = per_lb.setdefault(owner, {"bytes_in": 0, "packets_in": 0})
                entry["bytes_in"] += nbytes
                entry["packets_in"] += packets
        return {"load_balancers": per_lb} | base

    def backend_traffic(self) -> list[BackendTraffic]:
        """Packets and bytes per backend that carried any, only of the VIPs this node serves
        for a load balancer (bounded by the data plane's backend capacity). From what this
        process wrote and one batch read of the counters: a lookup per VIP and per backend
        slot took seconds at 10,000 VIPs of 10 backends, and 100,000 entries of zeros were
        most of the report; then walking every slot to find the few busy ones cost ~240 ms a
        traffic report at 100,000 backends, so the busy slots are found in the counters first.
        A backend absent from the list reads as 0."""
        assert self.lb is not None
        _, slot_rows = self.lb.rows_in_use()  # not the 131,072 slots of a node's capacity
        sums = self.lb.maps.backend_stats.sums(slot_rows)
        busy = {slot: (p, b) for slot, p, b in _carried_traffic(sums)}
        if not busy:
            return []
        with self._lock:
            owners = dict(self.vip_owner)
        names = {vip_id: name for name, vip_id in self.lb.vip_ids().items() if name in owners}
        stats = [
            (vip_id, address, *busy[slot])
            for slot, vip_id, address in self.lb.backend_slots_of(busy)
            if vip_id in names
        ]
        if len(stats) > MAX_BACKENDS:  # the busiest first: what a chart needs
            stats = sorted(stats, key=lambda s: s[2], reverse=True)[:MAX_BACKENDS]
        return [
            BackendTraffic(
                load_balancer_id=owners[names[vip_id]],
                vip=names[vip_id],
                address=address,
                packets=packets,
                bytes=nbytes,
            )
            for vip_id, address, packets, nbytes in stats
        ]

    def routing(self) -> RoutingState:
        """BGP and BFD sessions and the announced VIPs; asked at most every routing_every
        seconds, "unknown" when BIRD does not answer."""
        now = time.monotonic()
        if self._routing is None or now - self._routing[0] >= self.routing_every:
            self._routing = (now, routing_state(self.bird, len(self.speaker.announced)))
        return self._routing[1]

    def ownership(self) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        """(VIP name -> load balancer, load balancer -> VIP name -> table digest), now."""
        with self._lock:
            return dict(self.vip_owner), dict(self.digests)

    def report(self) -> None:
        """Only what changed since the report the controller acknowledged; a whole one when
        it has another base (409)."""
        assert self.node_id is not None
        traffic = self._traffic_due()
        counters = self.counters(per_lb_too=traffic)
        backends = self.backend_traffic() if traffic else None
        routing = self.routing()

        def post(tables: ReportBody) -> None:
            assert self.node_id is not None
            self.api.report(
                self.node_id,
                self.seq,
                tables.errors,
                tables.digests,
                counters,
                version=__version__,
                routing=routing,
                backends=backends,
                numbering=tables.fields(),
            )

        self.reports.send_read(self._tables, post)

    def _tables(self, lb_ids: set[str] | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The report's reader (ReportTracker.send_read): copies of the whole tables, or of
        the digests of lb_ids and of the load balancers with errors."""
        with self._lock:
            errors, digests = list(self.errors), self.digests
            if lb_ids is None:
                return dict(digests), errors
            wanted = lb_ids | {str(e["load_balancer_id"]) for e in errors}
            return {k: digests[k] for k in wanted if k in digests}, errors

    def _flood_event(self, status: FloodStatus, on: bool) -> dict[str, Any]:
        return {
            "kind": "flood_mode_entered" if on else "flood_mode_exited",
            "severity": "warning" if on else "info",
            "message": f"{self.cfg.name}: flood mode {'on' if on else 'off'} "
            f"(new flows/s per CPU: {status.rate})",
            "detail": {"entries": status.entries, "exits": status.exits},
        }

    def watch(self) -> None:
        """Checks between polls: flood-mode transitions, the data plane still attached."""
        assert self.lb is not None
        status = self.lb.flood_status()
        # The data plane counts its entries into flood mode: a flood that came and went
        # between two checks (a short burst, or this thread starved) still makes both events.
        entered = self._flood_entries is not None and status.entries > self._flood_entries
        self._flood_entries = status.entries
        if (entered or status.active) and not self._flood_active:
            self._flood_active = True
            self._pending_events.append(self._flood_event(status, True))
        if self._flood_active and not status.active:
            self._flood_active = False
            self._pending_events.append(self._flood_event(status, False))
        attached = self.dataplane_attached()
        if attached != self.dataplane_ok:
            self.dataplane_ok = attached
            self._pending_events.append(
                {
                    "kind": "dataplane_lost" if not attached else "dataplane_restored",
                    "severity": "error" if not attached else "info",
                    "message": f"{self.cfg.name}: XDP program "
                    f"{'detached' if not attached else 'attached again'}",
                }
            )
            if not attached:
                # Re-attach first (milliseconds, on the pinned maps: sessions intact) and keep
                # the routes: withdrawing and re-announcing would move every flow of this
                # node to another one, and those whose member changed meanwhile would break.
                try:
                    self.ensure_dataplane()
                    self.update_announcements(None)
                except ShoalError as exc:
                    log.error("cannot re-attach the data plane: %s; withdrawing", exc)
                    self.update_announcements([])

    # ---- loop --------------------------------------------------------------------------------

    def register(self) -> None:
        info = NodeInfo(
            name=self.cfg.name,
            role="l4",
            cluster=self.cfg.cluster,
            address=self.cfg.address,
            version=__version__,
        )
        self.node_id = self.api.register(info)
        self.reports.reset()  # the controller may hold another base (or none)
        log.info("registered as node %s (%s)", self.cfg.name, self.node_id)

    def prepare(self) -> None:
        self.ensure_dataplane()

    def side_tick(self) -> None:
        """Health results, events, data-plane checks (the main loop may be waiting on a
        long poll)."""
        if self.node_id is None or self.lb is None:
            return
        self.watch()
        self.api.health(self.node_id, self.health.drain())
        events, self._pending_events = self._pending_events, []
        self.api.events(self.node_id, events)

    def stop(self, withdraw: bool = True) -> None:
        self._stop.set()
        if withdraw:
            try:
                self.speaker.announce([])
            except ShoalError as exc:
                log.error("could not withdraw VIPs: %s", exc)
        self.health.close()
        self.l7watch.close()

    def close(self) -> None:
        self.l7watch.close()
        if self.lb is not None:
            self.lb.close()
        self.api.close()


def _split(
    touched: set[str], now: dict[str, list[VipSpec]], before: dict[str, list[VipSpec]]
) -> tuple[list[str], set[str]]:
    """(touched load balancers present now, touched ones gone since before)."""
    return [k for k in touched if k in now], {k for k in touched if k not in now and k in before}


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def _carried_traffic(sums: npt.NDArray[np.uint64]) -> list[tuple[int, int, int]]:
    """(row, packets, bytes) of the rows of a per-CPU traffic map's sums that carried any:
    found in numpy, so an idle map of 100,000 rows costs a vector scan, not a Python loop."""
    if not len(sums):
        return []
    rows = np.flatnonzero(sums[:, :2].any(axis=1))
    return [(r, p, b) for r, (p, b) in zip(rows.tolist(), sums[rows, :2].tolist(), strict=True)]
