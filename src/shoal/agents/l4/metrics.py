"""The L4 node's Prometheus metrics, read from the data plane's counter maps at scrape time:
per VIP and per backend packets and bytes, verdicts and drops by reason, new flows, the
session cache (hits, misses, inserts, occupancy), flood mode and its transitions, each
VIP's Maglev table digest (an info metric: nodes agree when every node shows the same), and
the node's BGP and BFD sessions as its BIRD reports them.

Label values are VIP names ("tcp://10.0.0.1:80"), backend addresses, load balancer ids,
counter names and BIRD protocol names: bounded by the data plane's sizes and the operator's
configuration. Client addresses never appear."""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from shoal.agents.birdstate import BirdState
from shoal.dataplane import abi
from shoal.errors import ShoalError

if TYPE_CHECKING:
    from shoal.agents.l4.agent import L4Agent

__all__ = ["COUNTER_FAMILIES", "L4Collector"]

log = logging.getLogger("shoal.agent.l4.metrics")

# Every data-plane counter, as (metric family, label value); None: a family of its own.
COUNTER_FAMILIES: dict[abi.Counter, tuple[str, str | None]] = {
    abi.Counter.PASS_NOT_IP: ("packets", "pass_not_ip"),
    abi.Counter.PASS_NOT_VIP: ("packets", "pass_not_vip"),
    abi.Counter.PASS_FRAGMENT: ("packets", "pass_fragment"),
    abi.Counter.PASS_OTHER: ("packets", "pass_other"),
    abi.Counter.PASS_NO_NEIGH: ("packets", "pass_no_neigh"),
    abi.Counter.TX: ("packets", "tx"),
    abi.Counter.REDIRECT: ("packets", "redirect"),
    abi.Counter.DROP_NO_BACKEND: ("drops", "no_backend"),
    abi.Counter.DROP_TOO_BIG: ("drops", "too_big"),
    abi.Counter.DROP_ENCAP: ("drops", "encap"),
    abi.Counter.DROP_NO_ROUTE: ("drops", "no_route"),
    abi.Counter.DROP_ACL: ("drops", "acl"),
    abi.Counter.CACHE_HIT: ("session_cache_hits", None),
    abi.Counter.CACHE_MISS: ("session_cache_misses", None),
    abi.Counter.CACHE_INSERT: ("session_cache_inserts", None),
    abi.Counter.CACHE_STALE: ("session_cache_events", "stale"),
    abi.Counter.CACHE_EXPIRED: ("session_cache_events", "expired"),
    abi.Counter.CACHE_CLOSING: ("session_cache_events", "closing"),
    abi.Counter.CACHE_SKIP_FLOOD: ("session_cache_events", "skip_flood"),
    abi.Counter.CACHE_REUSED: ("session_cache_events", "reused"),
    abi.Counter.NEW_FLOWS: ("new_flows", None),
    abi.Counter.FIB_FALLBACK: ("fib_fallbacks", None),
    abi.Counter.CHANCE: ("second_chance", None),
    abi.Counter.ICMP_TOO_BIG: ("icmp", "too_big_sent"),
    abi.Counter.ICMP_FORWARDED: ("icmp", "error_forwarded"),
    abi.Counter.FRAG_FIRST: ("fragments", "first"),
    abi.Counter.FRAG_FOLLOW: ("fragments", "follow"),
    abi.Counter.DROP_MALFORMED: ("drops", "malformed"),
}
_FAMILIES = {
    "packets": ("Packets by the data plane's verdict.", "verdict"),
    "drops": ("Packets dropped, by reason.", "reason"),
    "session_cache_hits": ("Session cache hits on a usable backend.", None),
    "session_cache_misses": ("Packets that found no session cache entry.", None),
    "session_cache_inserts": ("Entries written to the session cache.", None),
    "session_cache_events": (
        "Session cache entries found stale, expired or closing, and inserts skipped in flood mode.",
        "event",
    ),
    "new_flows": ("Flows hashed fresh into a Maglev table (the flood detector's input).", None),
    "fib_fallbacks": ("Next hops taken from the gateway MAC instead of the FIB.", None),
    "second_chance": (
        "Packets sent with their flow's previous owner in the tunnel (second chance).",
        None,
    ),
    "icmp": (
        "ICMP handled by the data plane: too-big answers sent to clients, errors quoting a VIP "
        "flow forwarded to its backend.",
        "kind",
    ),
    "fragments": (
        "Fragments to a VIP: first fragments remembered, later ones sent after them.",
        "kind",
    ),
}


_TOTAL = [
    f"shoal_l4_{name}_total"
    for name in ("vip_packets", "vip_bytes", "vip_acl_drops", "backend_packets", "backend_bytes")
]


@dataclass(frozen=True)
class _Labels:
    gen: int  # the agent's owned_gen they were read at
    desired: Any  # and the data plane's configuration object
    vips: list[tuple[int, dict[str, str]]]  # VIP id, its labels
    backends: list[tuple[int, dict[str, str]]]  # backend slot, its labels
    tables: InfoMetricFamily  # the table digests (they change with an apply only)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Without the cycle collector while samples are built: each of the 240,000 samples at
    10,000 VIPs is a tracked object, and the collections they set off cost 3 of every 4
    seconds of a scrape. Samples hold no cycles; the collector runs again after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class L4Collector(Collector):
    def __init__(
        self,
        agent: L4Agent,
        bird: BirdState | None = None,
        occupancy_every: float = 30.0,
    ) -> None:
        self.agent = agent
        self.bird = bird
        # Counting the LRU's entries walks the whole map: at most once per occupancy_every.
        self.occupancy_every = occupancy_every
        self._occupancy: tuple[float, int] | None = None
        self._kept: _Labels | None = None
        self._lock = threading.Lock()

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        lb = self.agent.lb
        if lb is not None:
            yield from self._counters(lb)
            yield from self._vips(lb)
            yield from self._sessions(lb)
            yield from self._flood(lb)
        if self.bird is not None:
            yield from self._bird(self.bird)

    def _counters(self, lb: Any) -> Iterator[Any]:
        values = lb.counters()
        fams: dict[str, CounterMetricFamily] = {}
        for name, (help_text, label) in _FAMILIES.items():
            fams[name] = CounterMetricFamily(
                f"shoal_l4_{name}", help_text, labels=[label] if label else None
            )
        for counter, (name, label_value) in COUNTER_FAMILIES.items():
            value = values.get(counter.name.lower(), 0)
            fams[name].add_metric([label_value] if label_value else [], value)
        yield from fams.values()

    def _vips(self, lb: Any) -> Iterator[Any]:
        with _gc_paused():
            families = list(self._vip_families(lb))
        yield from families

    def _vip_families(self, lb: Any) -> Iterator[Any]:
        labels = self._labels(lb)
        traffic, drops, backends = lb.counter_arrays()
        vip_packets = CounterMetricFamily(
            "shoal_l4_vip_packets", "Packets to each VIP.", labels=["vip", "load_balancer_id"]
        )
        vip_bytes = CounterMetricFamily(
            "shoal_l4_vip_bytes", "Bytes to each VIP.", labels=["vip", "load_balancer_id"]
        )
        acl = CounterMetricFamily(
            "shoal_l4_vip_acl_drops",
            "Packets of each VIP dropped for a source outside its allowed_cidrs.",
            labels=["vip", "load_balancer_id"],
        )
        # Samples built directly on the kept label dicts: add_metric would build each
        # label dict again (a third of a scrape at 10,000 VIPs).
        packets, nbytes, dropped = traffic[:, 0].tolist(), traffic[:, 1].tolist(), drops[:, 0]
        dropped = dropped.tolist()
        for vip_id, vip_labels in labels.vips:
            vip_packets.samples.append(Sample(_TOTAL[0], vip_labels, packets[vip_id]))
            vip_bytes.samples.append(Sample(_TOTAL[1], vip_labels, nbytes[vip_id]))
            acl.samples.append(Sample(_TOTAL[2], vip_labels, dropped[vip_id]))
        yield vip_packets
        yield vip_bytes
        yield acl

        be_packets = CounterMetricFamily(
            "shoal_l4_backend_packets",
            "Packets sent to each backend of a VIP.",
            labels=["vip", "backend"],
        )
        be_bytes = CounterMetricFamily(
            "shoal_l4_backend_bytes",
            "Bytes sent to each backend of a VIP.",
            labels=["vip", "backend"],
        )
        packets, nbytes = backends[:, 0].tolist(), backends[:, 1].tolist()
        for slot, be_labels in labels.backends:
            be_packets.samples.append(Sample(_TOTAL[3], be_labels, packets[slot]))
            be_bytes.samples.append(Sample(_TOTAL[4], be_labels, nbytes[slot]))
        yield be_packets
        yield be_bytes
        yield labels.tables

    def _labels(self, lb: Any) -> _Labels:
        """The label sets and table digests of what is applied, kept until the next apply
        (an unchanged data plane costs its counters only)."""
        with self._lock:
            kept = self._kept
        gen, desired = self.agent.owned_gen, lb.desired
        if kept is not None and kept.gen == gen and kept.desired is desired:
            return kept
        owners, digests = self.agent.ownership()
        names = lb.vip_ids()
        vips = [
            (vip_id, {"vip": name, "load_balancer_id": owners.get(name, "")})
            for name, vip_id in names.items()
        ]
        by_id = {vip_id: name for name, vip_id in names.items()}
        backends = [
            (slot, {"vip": by_id[vip_id], "backend": address})
            for slot, vip_id, address in sorted(lb.backend_slots())
            if vip_id in by_id
        ]
        table = InfoMetricFamily(
            "shoal_l4_vip_table",
            "The digest of each VIP's Maglev table: every node serving a VIP must show the "
            "same one.",
            labels=["vip", "load_balancer_id"],
        )
        for owner, per_vip in sorted(digests.items()):
            for name, digest in sorted(per_vip.items()):
                table.add_metric([name, owner], {"digest": digest})
        kept = _Labels(gen, desired, vips, backends, table)
        with self._lock:
            self._kept = kept
        return kept

    def _sessions(self, lb: Any) -> Iterator[Any]:
        capacity = GaugeMetricFamily(
            "shoal_l4_session_cache_capacity", "Entries the session cache can hold."
        )
        capacity.add_metric([], self.agent.cfg.session_cache_size)
        yield capacity
        entries = GaugeMetricFamily(
            "shoal_l4_session_cache_entries",
            "Entries in the session cache (counted at most every 30 s).",
        )
        entries.add_metric([], self._entries(lb))
        yield entries

    def _entries(self, lb: Any) -> int:
        now = time.monotonic()
        with self._lock:
            if self._occupancy is None or now - self._occupancy[0] >= self.occupancy_every:
                self._occupancy = (now, len(lb.maps.sessions))  # one batch read, counted in numpy
            return self._occupancy[1]

    def _flood(self, lb: Any) -> Iterator[Any]:
        status = lb.flood_status()
        mode = GaugeMetricFamily(
            "shoal_l4_flood_mode", "1 while any CPU of the node is in flood mode (pure Maglev)."
        )
        mode.add_metric([], 1 if status.active else 0)
        yield mode
        cpus = GaugeMetricFamily("shoal_l4_flood_mode_cpus", "CPUs in flood mode now.")
        cpus.add_metric([], sum(status.effective))
        yield cpus
        rate = GaugeMetricFamily(
            "shoal_l4_new_flow_rate",
            "New flows per second per CPU, as the flood detector last measured it.",
            labels=["cpu"],
        )
        for cpu, value in enumerate(status.rate):
            rate.add_metric([str(cpu)], value)
        yield rate
        transitions = CounterMetricFamily(
            "shoal_l4_flood_transitions",
            "Flood mode entries and exits (per CPU, summed).",
            labels=["direction"],
        )
        transitions.add_metric(["enter"], status.entries)
        transitions.add_metric(["exit"], status.exits)
        yield transitions

    def _bird(self, bird: BirdState) -> Iterator[Any]:
        up = GaugeMetricFamily(
            "shoal_bgp_session_up",
            "1 when the BGP session is Established (BIRD's view).",
            labels=["protocol"],
        )
        bfd = GaugeMetricFamily(
            "shoal_bfd_session_up",
            "1 when the BFD session is Up (BIRD's view).",
            labels=["protocol", "neighbor"],
        )
        ok = GaugeMetricFamily(
            "shoal_bird_up", "1 when the node's BIRD answered the agent's questions."
        )
        try:
            sessions, bfd_sessions = bird.bgp(), bird.bfd()
        except ShoalError as exc:
            log.debug("BIRD did not answer: %s", exc)
            ok.add_metric([], 0)
            yield ok
            return
        ok.add_metric([], 1)
        yield ok
        for s in sessions:
            up.add_metric([s.name], 1 if s.established else 0)
        yield up
        for b in bfd_sessions:
            bfd.add_metric([b.protocol, b.neighbor], 1 if b.up else 0)
        yield bfd
