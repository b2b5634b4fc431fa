"""`shoal bench dataplane`: nanoseconds per packet for each path of the XDP program.

Every path runs through BPF_PROG_TEST_RUN with repeat=1, one call per packet: with repeat>1 the
kernel feeds the program its own output, so an encapsulating program would measure the wrong
path from the second iteration on. The kernel's own per-run timer is used (no Python time in
it), and a trivial XDP_PASS program measured the same way, interleaved in the same run, gives
the floor that is subtracted. Paths are interleaved round by round so that drift on a noisy
machine hits them all alike. Each path reports its plain mean (what REFERENCE.md compares:
LRU inserts pay an occasional batch refill that a trimmed mean hides), its 1%..99% trimmed mean
and its median."""

from __future__ import annotations

import ctypes
import os
import statistics
import struct
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from shoal.bench.katran import KatranBalancer
from shoal.dataplane import libbpf as bpf
from shoal.dataplane import loader, maglev, packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.config import DataplaneConfig, parse_config
from shoal.dataplane.testrun import XdpAction, XdpMd
from shoal.errors import DataplaneError
from shoal.lab.sandbox import SANDBOX_BACKENDS4, SANDBOX_LB_MAC, sandbox

__all__ = ["KATRAN_NS", "DataplaneBench", "PathResult", "SameRunRow", "katran_row", "run"]

# Katran's balancer measured like for like on a 2-vCPU VM (shared/REFERENCE.md, same harness):
# ns above the floor of a trivial XDP program, the low end of each range. "inserting": built to
# write a session for every new flow; "not_inserting": never (its flood fallback). A Shoal path
# that writes a session compares with the first, a flood-mode path with the second.
KATRAN_NS: dict[str, dict[str, float]] = {
    "inserting": {"not_vip": 25, "syn": 155, "cache_hit": 70, "cache_miss": 484, "new_flow": 470},
    "not_inserting": {"not_vip": 26, "syn": 79, "cache_miss": 286, "new_flow": 88},
}
TARGET_RATIO = 0.8
VIP = "10.0.0.100"
ACL_VIP = "10.0.0.101"  # the same VIP with a 16-prefix allowed_cidrs list
ACL_PREFIXES = [f"192.0.{i}.0/24" for i in range(2, 18)]
TO_LB = bytes.fromhex(SANDBOX_LB_MAC.replace(":", ""))


@dataclass
class PathResult:
    path: str
    description: str
    mean_ns: float  # trimmed mean (1%..99%) of the kernel's per-run time (the gate's figure)
    median_ns: float
    above_floor_ns: float  # trimmed mean minus the floor's trimmed mean
    katran_ns: float | None
    ratio_to_katran: float | None  # plain mean above the floor / Katran's (REFERENCE's ratio)
    samples: int
    verdict: str
    plain_mean_ns: float = 0.0
    plain_above_floor_ns: float = 0.0  # plain mean minus the floor's plain mean
    katran_row: str | None = None  # e.g. "syn (inserting)"
    ratio_trimmed: float | None = None  # trimmed mean above the floor / Katran's


@dataclass
class SameRunRow:
    """A Shoal path against Katran's object measured in the same run, the same frames, above
    the same floor: plain means (REFERENCE's comparison) and 1%..99% trimmed means."""

    path: str
    katran_row: str  # e.g. "syn (inserting)"
    shoal_ns: float
    katran_ns: float
    ratio: float
    shoal_trimmed_ns: float
    katran_trimmed_ns: float
    ratio_trimmed: float
    katran_verdict: str  # "ok", or the unexpected XDP actions Katran returned
    ratio_rounds: tuple[float, float] = (0.0, 0.0)  # lowest and highest per-round plain ratio


@dataclass
class DataplaneBench:
    floor_ns: float  # trimmed mean
    paths: list[PathResult]
    maglev_build_ms: float | None
    maglev_build_ms_m655373: float | None
    calls_per_path: int
    cpu: int
    floor_plain_ns: float = 0.0
    kernel: str = field(default_factory=lambda: os.uname().release)
    katran_same_run: list[SameRunRow] = field(default_factory=list)
    sessions: int = 0  # entries of each session table (Shoal's, and each of Katran's LRUs)
    table_size: int = 0  # slots of each bench VIP's Maglev table (Katran's ring is always 65,537)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class _Runner:
    """Reusable test-run arguments for one program and one list of frames."""

    def __init__(self, prog_fd: int, frames: list[bytes], ifindex: int) -> None:
        self.prog_fd = prog_fd
        self.frames = [ctypes.create_string_buffer(f, len(f)) for f in frames]
        self.sizes = [len(f) for f in frames]
        self.out = ctypes.create_string_buffer(max(self.sizes) + 256)
        self.ctx = XdpMd(ingress_ifindex=ifindex)
        self.opts = bpf.opts(bpf.TestRunOpts, repeat=1)
        self.opts.data_out = ctypes.cast(self.out, ctypes.c_void_p)
        self.opts.ctx_in = ctypes.cast(ctypes.pointer(self.ctx), ctypes.c_void_p)
        self.opts.ctx_size_in = ctypes.sizeof(self.ctx)
        self.fn = bpf.lib().func("bpf_prog_test_run_opts")
        self.next = 0
        self.actions: set[int] = set()

    def sample(self, n: int) -> list[int]:
        out = []
        opts, fn, byref = self.opts, self.fn, ctypes.byref(self.opts)
        for _ in range(n):
            i = self.next
            self.next = (i + 1) % len(self.frames)
            opts.data_in = ctypes.cast(self.frames[i], ctypes.c_void_p)
            opts.data_size_in = self.sizes[i]
            self.ctx.data_end = self.sizes[i]
            opts.data_size_out = len(self.out)
            if fn(self.prog_fd, byref) != 0:
                raise OSError("bpf_prog_test_run_opts failed")
            out.append(opts.duration)
            self.actions.add(opts.retval)
        return out


def _frames(kind: str, n: int) -> list[bytes]:
    """One frame, or n frames of n different flows (client address and port vary)."""
    if kind == "not_vip":
        return [
            packets.tcp_frame(
                "192.0.2.1", "10.0.0.7", 40000, 80, packets.TCP_ACK, b"x" * 8, dmac=TO_LB
            )
        ]
    if kind == "cache_hit_acl":
        return [
            packets.tcp_frame(
                "192.0.2.1", ACL_VIP, 40001, 80, packets.TCP_ACK, b"x" * 8, dmac=TO_LB
            )
        ]
    if kind == "acl_drop":
        return [packets.tcp_frame("203.0.113.1", ACL_VIP, 40000, 80, packets.TCP_SYN, dmac=TO_LB)]
    if kind.startswith("syn"):
        return [packets.tcp_frame("192.0.2.1", VIP, 40000, 80, packets.TCP_SYN, dmac=TO_LB)]
    if kind == "cache_hit":
        return [
            packets.tcp_frame("192.0.2.1", VIP, 40001, 80, packets.TCP_ACK, b"x" * 8, dmac=TO_LB)
        ]
    # The SYN paths' clients differ from the ACK paths': a new flow must not find the entry an
    # unknown ACK of the same 5-tuple wrote earlier in the round (that is the SYN-refresh path).
    syn = kind.startswith("new_flow")
    flags = packets.TCP_SYN if syn else packets.TCP_ACK
    base = 0x64400000 if syn else 0xC6120000  # 100.64.0.0 / 198.18.0.0
    template = bytearray(
        packets.tcp_frame("198.18.0.0", VIP, 1024, 80, flags, b"x" * 8, dmac=TO_LB)
    )
    out = []
    for i in range(n):  # the data plane checks no checksum: patching addresses is enough
        struct.pack_into("!I", template, 26, base + i)
        struct.pack_into("!H", template, 34, 1024 + i % 60000)
        out.append(bytes(template))
    return out


# path -> (description, flood mode, Katran row it compares with). Flood mode writes no session,
# so it compares with Katran not inserting; the normal mode with Katran inserting.
PATHS: dict[str, tuple[str, bool, str | None]] = {
    "not_vip": ("packet not for a VIP", False, "not_vip"),
    "syn": ("TCP SYN to a VIP, same flow each call (session written)", False, "syn"),
    "cache_hit": ("TCP ACK, session-cache hit", False, "cache_hit"),
    "cache_miss": ("ACK of an unknown flow (cache miss, session written)", False, "cache_miss"),
    "new_flow": ("a new flow every packet (distinct SYNs, session written)", False, "new_flow"),
    "syn_flood": ("TCP SYN to a VIP, flood mode (pure Maglev)", True, "syn"),
    "cache_miss_flood": ("ACK of an unknown flow, flood mode", True, "cache_miss"),
    "new_flow_flood": ("a new flow every packet, flood mode", True, "new_flow"),
    "cache_hit_acl": ("TCP ACK, session-cache hit, VIP with allowed_cidrs", False, "cache_hit"),
    "acl_drop": ("TCP SYN from outside a VIP's allowed_cidrs (dropped)", False, None),
}


# Not Shoal paths: the kernel's price for one session write, for reading the rows above.
KERNEL_COSTS = {
    "lru_update": "kernel only: LRU hash update of an existing key",
    "lru_insert": "kernel only: LRU hash insert of a new key",
    "table_update": "kernel only: set-associative array table (4 ways), update of a key",
    "table_insert": "kernel only: set-associative array table (4 ways), insert of a new key",
}


# N=1000 equal backends: the Maglev paper's build-time case.
MAGLEV_BACKENDS = [(f"10.{i >> 8}.{i & 255}.1", 1) for i in range(1000)]


def _maglev_build_ms(size: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        maglev.build_table(MAGLEV_BACKENDS, size)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run(
    calls: int = 200_000,
    rounds: int = 20,
    progress: Callable[[str, float], None] | None = None,
    maglev_builds: bool = True,
    table_probe: bool = True,
    katran_objects: Sequence[Path] = (),
    sessions: int | None = None,
    table_size: int | None = None,
) -> DataplaneBench:
    """Measures every path; calls is the number of samples per path. maglev_builds: also
    time Maglev table builds (wall clock; `bench all` times them its own way). table_probe:
    also measure the set-associative table yardstick (no gated metric reads it).
    katran_objects: Katran built inserting, then optionally not inserting; each of its paths
    is interleaved with Shoal's and reported in katran_same_run. sessions: entries of the
    session tables (default: 4 per distinct flow, at least 2^20). table_size: slots of the
    bench VIPs' Maglev tables (default: what the controller gives their ten backends)."""
    if sessions is not None and sessions < 1:
        raise ValueError("sessions must be at least 1")
    if table_size is None:
        table_size = maglev.table_size_for(len(BENCH_BACKENDS))
    _lb_config(False, table_size)  # a bad size fails here, before the sandbox exists
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})  # one CPU: per-CPU LRU and counters behave as in production
    try:
        with sandbox("bench") as box:
            return _run(
                box.ifindex,
                calls,
                rounds,
                cpu,
                progress,
                maglev_builds,
                table_size,
                table_probe,
                list(katran_objects),
                sessions,
            )
    finally:
        os.sched_setaffinity(0, before)


def trimmed_mean(samples: list[int], cut: float = 0.01) -> float:
    """Mean without the top and bottom 1%: the kernel's timer here ticks in ~10 ns steps, so a
    median jumps between steps while a trimmed mean resolves a few nanoseconds."""
    arr = np.sort(np.asarray(samples))
    k = int(len(arr) * cut)
    return float(arr[k : len(arr) - k].mean()) if len(arr) > 2 * k else float(arr.mean())


def katran_row(path: str, flood: bool) -> tuple[str, float] | None:
    """The like-for-like Katran row of a Shoal path: its label and ns above the floor."""
    row = PATHS[path][2]
    column = "not_inserting" if flood else "inserting"
    if row is None or row not in KATRAN_NS[column]:
        return None
    return f"{row} ({column.replace('_', ' ')})", KATRAN_NS[column][row]


def _result(
    kind: str,
    desc: str,
    samples: list[int],
    floors: tuple[float, float],
    katran: tuple[str, float] | None,
    verdict: str | None,
) -> PathResult:
    """floors: the trivial program's (trimmed, plain) means."""
    mean = trimmed_mean(samples)
    plain = float(np.mean(samples))
    above, plain_above = mean - floors[0], plain - floors[1]
    label, ns = katran if katran else (None, None)
    ratio = plain_above / ns if ns else None
    if verdict is None:
        verdict = "-" if ratio is None else ("ok" if ratio <= TARGET_RATIO else "over target")
    return PathResult(
        kind,
        desc,
        mean,
        float(np.median(samples)),
        above,
        ns,
        ratio,
        len(samples),
        verdict,
        plain_mean_ns=plain,
        plain_above_floor_ns=plain_above,
        katran_row=label,
        ratio_trimmed=above / ns if ns else None,
    )


BENCH_BACKENDS = list(SANDBOX_BACKENDS4)[:10]  # each bench VIP's backends (Katran's reals too)


def _lb_config(flood: bool, table_size: int) -> DataplaneConfig:
    """The bench VIPs, their Maglev tables sized as table_size (the controller sizes them
    from the backend count: maglev.table_size_for)."""
    backends = [{"address": a} for a in BENCH_BACKENDS]
    # Flood mode on from the first new flow (rate 1/s) or off (enter_rate 0).
    flood_cfg = (
        {"enter_rate": 1, "exit_rate": 0, "hold_down": 3600}
        if flood
        else {"enter_rate": 0, "exit_rate": 0}
    )
    return parse_config(
        {
            "settings": {"flood": flood_cfg},
            "vips": [
                {
                    "address": VIP,
                    "port": 80,
                    "protocol": "tcp",
                    "backends": backends,
                    "table_size": table_size,
                },
                {
                    "address": ACL_VIP,
                    "port": 80,
                    "protocol": "tcp",
                    "backends": backends,
                    "allowed_cidrs": ACL_PREFIXES,
                    "table_size": table_size,
                },
            ],
        }
    )


def _run(
    ifindex: int,
    calls: int,
    rounds: int,
    cpu: int,
    progress: Callable[[str, float], None] | None,
    maglev_builds: bool,
    table_size: int,
    table_probe: bool = True,
    katran_objects: list[Path] | None = None,
    sessions: int | None = None,
) -> DataplaneBench:
    distinct = calls + 1
    sessions = sessions or max(4 * distinct, 1 << 20)
    with (
        loader.BpfObject(loader.bpf_object_path("trivial"), None) as trivial,
        Balancer.load(pin=False, session_cache_size=sessions) as normal,
        Balancer.load(pin=False, session_cache_size=sessions) as flooded,
        ExitStack() as stack,
    ):
        normal.apply(_lb_config(False, table_size))
        flooded.apply(_lb_config(True, table_size))
        # What the kernel holds, not what was asked: the figure the results are labelled with.
        measured = {v.table_size for lb in (normal, flooded) for v in lb.status()}
        if measured != {table_size}:
            raise DataplaneError(f"bench VIPs hold tables of {sorted(measured)}, not {table_size}")
        runners = {
            "floor": _Runner(trivial.prog_fd("shoal_trivial"), _frames("not_vip", 1), ifindex)
        }
        lru_prog = trivial.prog_fd("shoal_lru_insert")
        runners["lru_update"] = _Runner(lru_prog, _frames("syn", 1), ifindex)
        runners["lru_insert"] = _Runner(lru_prog, _frames("new_flow", distinct), ifindex)
        if table_probe:
            table_prog = trivial.prog_fd("shoal_table_insert")
            runners["table_update"] = _Runner(table_prog, _frames("syn", 1), ifindex)
            runners["table_insert"] = _Runner(table_prog, _frames("new_flow", distinct), ifindex)
        for kind, (_, flood, _) in PATHS.items():
            n = distinct if kind.startswith(("cache_miss", "new_flow")) else 1
            lb = flooded if flood else normal
            runners[kind] = _Runner(lb.prog_fd, _frames(kind, n), ifindex)
        theirs = _katran_runners(stack, katran_objects or [], sessions, distinct, ifindex)
        runners = _paired(runners, theirs)
        runners["cache_hit"].sample(1)  # its flow is now in the cache
        runners["cache_hit_acl"].sample(1)
        for name, runner in theirs.items():
            if name.endswith(":cache_hit"):
                runner.sample(1)
        samples: dict[str, list[int]] = {k: [] for k in runners}
        per_round = max(1, calls // rounds)
        for r in range(rounds):
            for kind, runner in runners.items():
                samples[kind] += runner.sample(per_round)
            if progress:
                progress("data-plane paths", (r + 1) / rounds)
        floor = trimmed_mean(samples["floor"])
        floors = (floor, float(np.mean(samples["floor"])))
        results = []
        for kind, (desc, flood, _) in PATHS.items():
            katran = katran_row(kind, flood)
            actions = {XdpAction(a).name for a in runners[kind].actions}
            expected = {"not_vip": {"PASS"}, "acl_drop": {"DROP"}}.get(kind, {"TX"})
            bad = None if actions == expected else f"unexpected {sorted(actions)}"
            results.append(_result(kind, desc, samples[kind], floors, katran, bad))
        for kind, desc in KERNEL_COSTS.items():
            if kind not in runners:
                continue
            results.append(_result(kind, desc, samples[kind], floors, None, "reference"))
        katran_actions = {k: r.actions for k, r in theirs.items()}
        same_run = same_run_rows(samples, katran_actions, floors, rounds)
    bench = DataplaneBench(floor, results, None, None, calls, cpu, floors[1])
    bench.katran_same_run = same_run
    bench.sessions = sessions
    bench.table_size = table_size
    if not maglev_builds:
        return bench
    if progress:
        progress("maglev build", 0.0)
    bench.maglev_build_ms = _maglev_build_ms(65537, 20)
    bench.maglev_build_ms_m655373 = _maglev_build_ms(655373, 5)
    return bench


KATRAN_VARIANTS = ("inserting", "not_inserting")  # the order of --katran-object's paths
KATRAN_ROWS = ("not_vip", "syn", "cache_hit", "cache_miss", "new_flow")


def _katran_runners(
    stack: ExitStack, objects: list[Path], sessions: int, distinct: int, ifindex: int
) -> dict[str, _Runner]:
    """One runner per Katran row and object, fed the very frames Shoal's path of that row gets
    (same VIP, same 5-tuples); its per-CPU LRUs are sized as Shoal's session table."""
    reals = BENCH_BACKENDS  # Shoal's VIP has the same ten backends
    mac = SANDBOX_BACKENDS4[reals[0]]
    runners = {}
    for variant, path in zip(KATRAN_VARIANTS, objects, strict=False):
        lb = stack.enter_context(KatranBalancer(path, VIP, 80, reals, mac, sessions))
        flood = variant == "not_inserting"
        for row in KATRAN_ROWS:
            if not any(f == flood and r == row for _, f, r in PATHS.values()):
                continue  # no Shoal path compares with it (e.g. a cache hit, not inserting)
            n = distinct if row in ("cache_miss", "new_flow") else 1
            runners[f"katran:{variant}:{row}"] = _Runner(lb.prog_fd, _frames(row, n), ifindex)
    return runners


def _round_ratios(shoal: list[int], kat: list[int], floor: list[int], rounds: int) -> list[float]:
    """Plain-mean ratio above the floor within each round (samples are appended round by
    round): their spread says how much of a ratio is the machine's drift."""
    out: list[float] = []
    n = len(shoal) // rounds
    if len(floor) < n * rounds or len(kat) < n * rounds:
        return out
    for r in range(rounds if n else 0):
        part = slice(r * n, (r + 1) * n)
        base = float(np.mean(floor[part]))
        theirs = float(np.mean(kat[part])) - base
        if theirs > 0:
            out.append((float(np.mean(shoal[part])) - base) / theirs)
    return out


def _paired(ours: dict[str, _Runner], theirs: dict[str, _Runner]) -> dict[str, _Runner]:
    """Each Katran runner right after the first Shoal path compared with it, so that the
    machine's drift within a round hits both sides of a ratio alike."""
    out: dict[str, _Runner] = {}
    for kind, runner in ours.items():
        out[kind] = runner
        if kind in PATHS and PATHS[kind][2] is not None:
            variant = KATRAN_VARIANTS[1 if PATHS[kind][1] else 0]
            name = f"katran:{variant}:{PATHS[kind][2]}"
            if name in theirs and name not in out:
                out[name] = theirs[name]
    return out | theirs  # any left over (none with today's PATHS) still run


def same_run_rows(
    samples: dict[str, list[int]],
    actions: dict[str, set[int]],
    floors: tuple[float, float],
    rounds: int = 1,
) -> list[SameRunRow]:
    """Each Shoal path that has a Katran row, against that row measured in this run. A path
    whose like-for-like object was not given (flood rows without the not-inserting build) is
    left out rather than compared with the wrong build."""
    rows = []
    for kind, (_, flood, row) in PATHS.items():
        variant = KATRAN_VARIANTS[1 if flood else 0]
        name = f"katran:{variant}:{row}"
        if row is None or name not in samples:
            continue
        expected = {XdpAction.PASS} if row == "not_vip" else {XdpAction.TX}
        got = {XdpAction(a) for a in actions.get(name, set())}
        verdict = "ok" if got == expected else f"unexpected {sorted(a.name for a in got)}"
        shoal, kat = samples[kind], samples[name]
        shoal_ns, kat_ns = float(np.mean(shoal)) - floors[1], float(np.mean(kat)) - floors[1]
        shoal_t, kat_t = trimmed_mean(shoal) - floors[0], trimmed_mean(kat) - floors[0]
        rows.append(
            SameRunRow(
                kind,
                f"{row} ({variant.replace('_', ' ')})",
                shoal_ns,
                kat_ns,
                shoal_ns / kat_ns if kat_ns > 0 else float("nan"),
                shoal_t,
                kat_t,
                shoal_t / kat_t if kat_t > 0 else float("nan"),
                verdict,
            )
        )
        per_round = _round_ratios(shoal, kat, samples.get("floor", []), rounds)
        if per_round:
            rows[-1].ratio_rounds = (min(per_round), max(per_round))
    return rows
