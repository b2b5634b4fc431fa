"""End-to-end packet rate: minimum-size UDP frames through the real `shoal_lb` XDP program to
its backends, against a bounce baseline on the same path, from two independent generators.

    fabric ns: f0 (generator + sink) ──veth── l4 ns: eth0 (shoal_lb | shoal_bounce, native XDP)

The L4 node is one-armed, as Katran and most L4 tiers are: frames arrive from the fabric and
leave, encapsulated, back into it (XDP_TX) towards the backends, which are neighbours on the
fabric. The fabric namespace plays both ends: clients (the generator) and backends (the sink
counts every frame by its destination address, then drops it, so receiving is cheap and the
same for both programs). The baseline swaps the L4 node's program for `shoal_bounce` (swap
MACs, XDP_TX): the same generator, veths, softirqs and sink, without the load balancer's work.
The figure that matters is lb_pps / bounce_pps, measured in alternating rounds of one run;
absolute rates on veths say nothing about a NIC."""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from subprocess import Popen

from shoal import netns
from shoal.bench import netsniff
from shoal.bench.registry import NotAvailable
from shoal.bench.trafgen import FlowPattern, Trafgen, live_frames_refusal, min_frame
from shoal.dataplane import loader, maglev
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.config import DataplaneConfig, parse_config
from shoal.errors import DataplaneError
from shoal.lab.topology import Topology

__all__ = ["E2EBench", "E2ESizes", "GeneratorResult", "run"]

NET = "10.96.0"
L4_ADDR, FABRIC_ADDR = f"{NET}.1", f"{NET}.2"
VIP, VIP_PORT = "10.96.100.200", 53
BACKENDS = [f"{NET}.{11 + i}" for i in range(4)]
FLOWS = FlowPattern(flows=1024, port_span=256, saddr="10.98.0.1", sport_base=1024)
TRAFGEN_ATTEMPTS = 3
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class E2ESizes:
    rounds: int = 5  # bounce/lb pairs per generator, alternating which goes first
    seconds: float = 1.0  # per measurement
    packets: int = 20_000_000  # per measurement, the second bound
    trafgen_frames: int = 256  # distinct frames (flows) in trafgen's configuration


QUICK = E2ESizes(rounds=3, seconds=0.4, packets=6_000_000)


@dataclass
class GeneratorResult:
    generator: str
    lb_pps: list[float] = field(default_factory=list)
    bounce_pps: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)  # per round: lb / bounce of that round
    sent: int | None = 0  # None: the generator does not count (trafgen)
    delivered: int = 0
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None

    def summary(self) -> dict[str, float | None]:
        med = statistics.median
        return {
            "ratio": self.ratio,
            "lb_mpps": med(self.lb_pps) / 1e6 if self.lb_pps else None,
            "bounce_mpps": med(self.bounce_pps) / 1e6 if self.bounce_pps else None,
        }


@dataclass
class E2EBench:
    protocol: str
    flows: int
    cpu: int
    sizes: E2ESizes
    live: GeneratorResult
    trafgen: GeneratorResult
    by_backend: dict[str, int]  # frames the sink counted per backend, load balancer rounds
    lb_counters: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["live"]["summary"] = self.live.summary()
        out["trafgen"]["summary"] = self.trafgen.summary()
        return out


def _slot(address: str) -> int:
    """The sink's counter for an address: its last byte."""
    return int(address.rsplit(".", 1)[1])


def _vip_config() -> DataplaneConfig:
    # The table the controller would give these backends (maglev.table_size_for).
    size = maglev.table_size_for(len(BACKENDS))
    vip = {"address": VIP, "port": VIP_PORT, "protocol": "udp", "table_size": size}
    return parse_config({"vips": [{**vip, "backends": [{"address": b} for b in BACKENDS]}]})


class _Node:
    """The two namespaces, the programs and the sink, all entered on the caller's ExitStack,
    which removes them (namespaces included) however the run ends."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self.topo = stack.enter_context(Topology(f"shoal-e2e-{os.getpid()}"))
        self.fabric, self.l4 = self.topo.ns("fabric"), self.topo.ns("l4")
        fabric_mac, l4_mac = self._wire()
        self.gen = stack.enter_context(Trafgen())
        self.gen.pattern(FLOWS)
        self.gen.attach_sink("f0", self.fabric)
        self.lb = stack.enter_context(Balancer.load(pin=False, session_cache_size=1 << 16))
        self.lb.apply(_vip_config())
        trivial = loader.BpfObject(loader.bpf_object_path("trivial"), None)
        self.trivial = stack.enter_context(trivial)
        mac = bytes.fromhex
        self.frame = min_frame(
            "udp", VIP, VIP_PORT, smac=mac(fabric_mac.replace(":", "")),
            dmac=mac(l4_mac.replace(":", "")),
        )  # fmt: skip

    def _wire(self) -> tuple[str, str]:
        """The veth, addresses, and the backends as neighbours behind the fabric's MAC."""
        t = self.topo
        t.link(self.fabric, "f0", self.l4, "eth0")
        t.run(self.fabric, "ip", "addr", "add", f"{FABRIC_ADDR}/24", "dev", "f0")
        t.run(self.l4, "ip", "addr", "add", f"{L4_ADDR}/24", "dev", "eth0")
        t.sysctl(self.l4, net__ipv4__ip_forward=1)  # bpf_fib_lookup answers only when on
        fabric_mac = t.mac(self.fabric, "f0")
        for backend in BACKENDS:
            t.run(self.l4, "ip", "neigh", "replace", backend, "lladdr", fabric_mac,
                  "nud", "permanent", "dev", "eth0")  # fmt: skip
        return fabric_mac, t.mac(self.l4, "eth0")

    def use(self, program: str) -> None:
        fd = self.lb.prog_fd if program == "lb" else self.trivial.prog_fd("shoal_bounce")
        with netns.entered(self.l4):
            loader.attach_xdp(netns.ifindex("eth0"), fd, "native")

    def delivered(self, program: str) -> int:
        """Frames the sink counted where this program sends them: the backends, or (bounce)
        back to the VIP's address."""
        slots = self.gen.received_by_slot()
        return int(sum(slots[_slot(a)] for a in (BACKENDS if program == "lb" else [VIP])))

    def by_backend(self) -> dict[str, int]:
        slots = self.gen.received_by_slot()
        return {b: int(slots[_slot(b)]) for b in BACKENDS}


def _live_rate(node: _Node, program: str, sizes: E2ESizes) -> tuple[float, int, int]:
    """(delivered per busy second, sent, delivered) of one bounded send."""
    before = node.delivered(program)
    sent = node.gen.send(
        node.frame, "f0", node.fabric, packets=sizes.packets, seconds=sizes.seconds
    )
    time.sleep(0.01)  # the last batch leaves the rings
    got = node.delivered(program) - before
    return got / sent.busy_seconds, sent.packets, got


class _TrafgenQuitError(DataplaneError):
    """trafgen exited while it was being measured."""


def _wait_for_traffic(node: _Node, program: str, proc: Popen[bytes]) -> None:
    start, deadline = node.delivered(program), time.monotonic() + 5.0
    while node.delivered(program) == start:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise _TrafgenQuitError(f"trafgen sent nothing: {netsniff.error_text(proc)}")
        time.sleep(0.01)
    time.sleep(0.05)  # past its start-up


def _trafgen_window(
    node: _Node, program: str, sizes: E2ESizes, frames: list[bytes], cpu: int
) -> tuple[float, int]:
    """(delivered per second, delivered) over a steady window of trafgen's sending: wall
    clock, with trafgen's start-up left out of the window."""
    with netsniff.running(node.fabric, "f0", frames, packets=sizes.packets, cpu=cpu) as proc:
        _wait_for_traffic(node, program, proc)
        c0, t0 = node.delivered(program), time.perf_counter()
        time.sleep(sizes.seconds)
        c1, t1 = node.delivered(program), time.perf_counter()
        if proc.poll() is not None:
            raise _TrafgenQuitError(
                f"trafgen stopped inside the window: {netsniff.error_text(proc)}"
            )
    return (c1 - c0) / (t1 - t0), c1 - c0


def _trafgen_rate(
    node: _Node, program: str, sizes: E2ESizes, frames: list[bytes], cpu: int
) -> tuple[float, None, int]:
    """A window of trafgen, tried up to TRAFGEN_ATTEMPTS times: trafgen gives up when its
    socket's send buffer is full (EAGAIN: "Flushing TX_RING failed"), which happens when the
    machine is busy and the receive softirqs fall behind. It is told not to raise the
    machine-wide socket memory limits that would avoid that."""
    for attempt in range(TRAFGEN_ATTEMPTS):
        try:
            rate, got = _trafgen_window(node, program, sizes, frames, cpu)
            return rate, None, got  # trafgen does not say how many it sent in the window
        except _TrafgenQuitError:
            if attempt == TRAFGEN_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _round(
    node: _Node,
    result: GeneratorResult,
    measure: Callable[[str], tuple[float, int | None, int]],
    r: int,
) -> None:
    """One bounce/lb pair; odd rounds run the load balancer first, so drift cancels."""
    rates = {}
    for program in ("bounce", "lb") if r % 2 == 0 else ("lb", "bounce"):
        node.use(program)
        rate, sent, got = measure(program)
        rates[program] = rate
        result.sent = None if sent is None or result.sent is None else result.sent + sent
        result.delivered += got
    result.lb_pps.append(rates["lb"])
    result.bounce_pps.append(rates["bounce"])
    result.ratios.append(rates["lb"] / rates["bounce"])


def _trafgen_rounds(
    node: _Node, sizes: E2ESizes, cpu: int, progress: Callable[[int], None], *, warm: bool
) -> GeneratorResult:
    """trafgen's rounds; it is the second opinion, so its failure is a note, not an error.
    warm: first one unmeasured window per program (when the live generator did not warm up)."""
    result = GeneratorResult("trafgen")
    if netsniff.binary() is None:
        result.note = "skipped: trafgen not installed (Debian package netsniff-ng)"
        return result
    frames = [
        min_frame("udp", VIP, VIP_PORT, smac=node.frame[6:12], dmac=node.frame[:6],
                  src=src, sport=port)
        for src, port in map(FLOWS.flow, range(sizes.trafgen_frames))
    ]  # fmt: skip
    for program in ("lb", "bounce") if warm else ():
        node.use(program)
        try:
            _trafgen_rate(node, program, replace(sizes, seconds=0.2), frames, cpu)
        except _TrafgenQuitError as exc:
            result.note = f"stopped while warming up: {exc}"
            return result
    for r in range(sizes.rounds):
        try:
            _round(node, result, lambda p: _trafgen_rate(node, p, sizes, frames, cpu), r)
        except _TrafgenQuitError as exc:
            result.note = f"stopped after {r} round(s): {exc}"
            break
        progress(r)
    return result


def _measure(node: _Node, sizes: E2ESizes, cpu: int, progress: Progress | None) -> E2EBench:
    refusal = live_frames_refusal()
    steps = sizes.rounds * ((refusal is None) + (netsniff.binary() is not None))

    def report(what: str, step: int) -> None:
        if progress:
            progress(f"end-to-end packet rate ({what})", step / steps)

    def since(before: dict[str, int]) -> dict[str, int]:
        return {b: n - before[b] for b, n in node.by_backend().items()}

    live = GeneratorResult("live-frames")
    if refusal is None:
        for program in ("lb", "bounce"):  # warm: sessions, next-hop caches, page pools
            node.use(program)
            node.gen.send(node.frame, "f0", node.fabric, packets=100_000, seconds=0.5)
        lb_before = node.by_backend()
        for r in range(sizes.rounds):
            _round(node, live, lambda p: _live_rate(node, p, sizes), r)
            report("live frames", r + 1)
        by_backend = since(lb_before)  # the live generator's 1,024 flows
    else:
        live.note = f"skipped: {refusal}"
        lb_before = node.by_backend()
    done = sizes.rounds if refusal is None else 0
    tg = _trafgen_rounds(
        node, sizes, cpu, lambda r: report("trafgen", done + r + 1), warm=refusal is not None
    )
    if refusal is not None:
        by_backend = since(lb_before)  # trafgen's flows (warm-up included)
    return E2EBench("udp", FLOWS.flows, cpu, sizes, live, tg, by_backend, node.lb.counters())


def run(sizes: E2ESizes = E2ESizes(), progress: Progress | None = None) -> E2EBench:
    """Builds the namespaces, measures, and removes everything (also on failure).
    Without live frames, trafgen's rounds stand alone (their ratio is not gated); without
    either generator the benchmark is not available here."""
    refusal = live_frames_refusal()
    if refusal is not None and netsniff.binary() is None:
        raise NotAvailable(f"{refusal}, and trafgen (Debian package netsniff-ng) is missing")
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})  # one CPU: every softirq of the path runs on it
    try:
        with contextlib.ExitStack() as stack:
            return _measure(_Node(stack), sizes, cpu, progress)
    finally:
        os.sched_setaffinity(0, before)
