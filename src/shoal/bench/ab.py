"""The A/B gate: the change (head) against its base, measured in the same run on the same
machine, interleaved.

Each round runs every gated benchmark once on each side, in a fresh process each time
(`shoal bench all --only NAME --repeats 1 --json` of that side's own code), base first in
odd rounds and head first in even ones, so a drift of the machine hits both alike. Per
metric and round the two runs give a paired ratio; its "slowdown" is head/base for a metric
where lower is better and base/head for one where higher is better. The verdict takes the
median slowdown over the rounds against a tolerance derived from the noise of such pairs:

    tolerance = clamp(Z * sigma / sqrt(rounds), MIN_TOLERANCE, the metric's own tolerance)

where sigma is the larger of the A/A spread recorded for this machine (bench/aa-spread.json,
`shoal bench gate --aa`) and the spread of this run's own pairs (a constant slowdown does
not widen that spread, so it estimates the noise, not the change). A metric the A/A record
lacks has only its own few pairs to estimate sigma from, so Z becomes Student's t at the
same confidence for their degrees of freedom.

A metric that fires is measured again: its benchmark runs fresh rounds, and the metric fails
only if those rounds, judged alone by the same rule, regress too. A one-off disturbance
(another process during a few rounds) does not repeat; a real slowdown does. The fresh
rounds are as many as the first, or more where the metric's recorded noise needs more for
Z * sigma / sqrt(rounds) to fit under its own tolerance (`rounds_to_resolve`): with fewer,
the clamp leaves the threshold inside the noise. Simulated with the control bench's 10% pair
noise, its 15% tolerance and two rounds, 2,000 A/As each: false failures 3 -> 1, a real 20%
slowdown caught 54% -> 62% of the time, 30%: 93% -> 96% (tests/bench/test_ab.py)."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from shoal.bench import machine
from shoal.bench.registry import Direction
from shoal.errors import ShoalError

__all__ = [
    "MIN_TOLERANCE",
    "SPREAD_SCHEMA",
    "T_AT_Z",
    "ABResult",
    "MetricVerdict",
    "Pairs",
    "Side",
    "Z",
    "confirm",
    "judge",
    "load_spread",
    "rounds_to_resolve",
    "run_rounds",
    "run_side",
    "side_command",
    "spread_of",
    "write_spread",
]

Z = 3.0  # standard errors of the median's noise a slowdown must exceed to fail
MIN_TOLERANCE = 0.03  # below this no paired measurement here is trustworthy
SPREAD_SCHEMA = "shoal-bench-aa-spread/1"
SIDE_TIMEOUT = 900  # one benchmark, one repeat, one side
MAX_CONFIRM_ROUNDS = 8  # a bound on the confirmation's cost (8 quick control rounds: ~3.5 min)
# One-sided Student t quantiles at Z's confidence (Phi(3) = 0.99865) by degrees of freedom
# (scipy.stats.t.ppf): the multiplier when sigma is estimated from this run's pairs alone.
# Beyond the table t is within 15% of Z.
T_AT_Z = {1: 235.8, 2: 19.21, 3: 9.22, 4: 6.62, 5: 5.51, 6: 4.9, 7: 4.53, 8: 4.28, 9: 4.09,
          10: 3.96, 11: 3.85, 12: 3.76, 13: 3.69, 14: 3.64, 15: 3.59, 16: 3.54, 17: 3.51,
          18: 3.48, 19: 3.45, 20: 3.42}  # fmt: skip


@dataclass(frozen=True)
class Side:
    """One side of the comparison: a source tree whose src/ is put on PYTHONPATH."""

    name: str  # "base" or "head"
    tree: Path
    commit: str | None


def side_command(bench: str, quick: bool, scratch: Path) -> list[str]:
    """The one command both sides answer: its interface is kept stable across commits."""
    cmd = [sys.executable, "-m", "shoal.cli.main", "bench", "all", "--json", "--repeats", "1"]
    cmd += ["--only", bench, "--history", str(scratch / "side-history.jsonl")]
    cmd += ["--baseline", str(scratch / "no-baseline.json")]
    return [*cmd, "--quick"] if quick else cmd


def run_side(side: Side, bench: str, quick: bool, scratch: Path) -> dict[str, Any]:
    """One repeat of one benchmark with this side's code: the run document."""
    env = dict(os.environ, PYTHONPATH=str(side.tree / "src"))
    log = scratch / f"{side.name}-{bench}.log"
    with log.open("a") as err:
        try:
            done = subprocess.run(
                side_command(bench, quick, scratch),
                cwd=side.tree,
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                timeout=SIDE_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise ShoalError(f"{bench} on the {side.name} side ran over {SIDE_TIMEOUT} s") from None
    try:
        doc: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        last = [line.strip() for line in log.read_text().splitlines() if line.strip()]
        if side.name == "base" and any("unknown benchmark" in line for line in last[-5:]):
            # A benchmark the change adds: the base has nothing to compare, its metrics are new.
            return {"benchmarks": {}, "metrics": {}}
        raise ShoalError(
            f"{bench} on the {side.name} side printed no result (exit {done.returncode}): "
            f"{last[-1] if last else 'no output'}"
        ) from None
    status = doc.get("benchmarks", {}).get(bench, {})
    if status.get("status") == "error" and side.name == "head":
        raise ShoalError(f"{bench} on the {side.name} side failed: {status.get('note')}")
    return doc  # a failed base is judged by the caller, once head's status is known


@dataclass
class Pairs:
    """The samples of one metric: base and head per round, in round order."""

    spec: dict[str, Any]  # head's metric document (direction, tolerance, description...)
    base: list[float] = field(default_factory=list)
    head: list[float] = field(default_factory=list)

    def slowdowns(self) -> list[float]:
        out = []
        for b, h in zip(self.base, self.head, strict=True):
            if b <= 0 or h <= 0:
                continue
            out.append(h / b if self.spec["direction"] == Direction.LOWER else b / h)
        return out


@dataclass(frozen=True)
class MetricVerdict:
    metric: str
    direction: str
    base: float | None  # median over the rounds
    head: float | None
    slowdown_pct: float | None  # median paired slowdown - 1, in %: > 0 is worse
    tolerance: float
    sigma: float | None  # the noise used: max(A/A record, this run's pairs)
    rounds: int
    kind: str  # ok, better, REGRESSED, unconfirmed, info (not gated), new (the base lacks it)
    # When the first rounds fired: the fresh rounds' median slowdown (%) and tolerance.
    confirm_slowdown_pct: float | None = None
    confirm_tolerance: float | None = None
    own_sigma: float | None = None  # this run's pairs alone (what an A/A records)


@dataclass
class ABResult:
    base: Side
    head: Side
    quick: bool
    rounds: int
    machine: dict[str, object]
    spread_source: str  # where sigma's floor came from
    verdicts: list[MetricVerdict]
    statuses: dict[str, str]  # benchmark -> ok / not available: why
    seconds: float

    @property
    def failed(self) -> bool:
        return any(v.kind == "REGRESSED" for v in self.verdicts)

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        for key in ("base", "head"):
            doc[key]["tree"] = str(doc[key]["tree"])
        return doc | {"failed": self.failed}


def _log_sigma(slowdowns: Sequence[float]) -> float | None:
    if len(slowdowns) < 2:
        return None
    return statistics.stdev(math.log(s) for s in slowdowns)


def judge(name: str, pairs: Pairs, recorded_sigma: float | None) -> MetricVerdict:
    """The verdict of one metric from its paired samples."""
    spec = pairs.spec
    base = statistics.median(pairs.base) if pairs.base else None
    head = statistics.median(pairs.head) if pairs.head else None
    own_tol = float(spec.get("tolerance", 0.15))
    slow = pairs.slowdowns()
    if not slow:  # the base does not have this metric yet
        return MetricVerdict(name, spec["direction"], base, head, None, own_tol, None, 0, "new")
    own = _log_sigma(slow)
    n = len(slow)
    if recorded_sigma is not None:
        sigma: float | None = max(recorded_sigma, own or 0.0)
        tol = Z * max(recorded_sigma, own or 0.0) / math.sqrt(n)
    elif own is not None:
        sigma = own
        tol = T_AT_Z.get(n - 1, Z) * own / math.sqrt(n)
    else:
        sigma, tol = None, own_tol
    tol = min(own_tol, max(MIN_TOLERANCE, tol))
    worse = statistics.median(slow) - 1
    if not spec.get("gate", True):
        kind = "info"
    elif worse > tol:
        kind = "REGRESSED"
    elif worse < -tol:
        kind = "better"
    else:
        kind = "ok"
    return MetricVerdict(
        name, spec["direction"], base, head, worse * 100, tol, sigma, n, kind, own_sigma=own
    )  # fmt: skip


def confirm(first: MetricVerdict, again: Pairs, recorded_sigma: float | None) -> MetricVerdict:
    """A fired metric after fresh rounds: REGRESSED only if those rounds, judged alone by the
    same rule, regress too (an independent replication: a fluke does not repeat)."""
    second = judge(first.metric, again, recorded_sigma)
    kind = "REGRESSED" if second.kind == "REGRESSED" else "unconfirmed"
    return replace(
        first, kind=kind, rounds=first.rounds + second.rounds,
        confirm_slowdown_pct=second.slowdown_pct, confirm_tolerance=second.tolerance,
    )  # fmt: skip


def rounds_to_resolve(sigma: float | None, tolerance: float, at_least: int) -> int:
    """Rounds whose Z-standard-error threshold fits under tolerance for pairs of noise sigma,
    never fewer than at_least nor more than MAX_CONFIRM_ROUNDS."""
    if not sigma or tolerance <= 0:
        return at_least
    needed = math.ceil((Z * sigma / tolerance) ** 2)
    return max(at_least, min(MAX_CONFIRM_ROUNDS, needed))


Runner = Callable[[Side, str, bool, Path], dict[str, Any]]
Progress = Callable[[str, int, int], None]  # (what runs now, steps done, steps in all)


def run_rounds(
    base: Side,
    head: Side,
    benches: Sequence[tuple[str, int]],
    *,
    quick: bool,
    spread: dict[str, float] | None,
    spread_source: str,
    runner: Runner = run_side,
    progress: Progress | None = None,
    on_head_run: Callable[[dict[str, Any]], None] | None = None,
) -> ABResult:
    """benches: (benchmark name, rounds). Every gated metric that head reports is judged;
    a benchmark with a metric that fires runs as many rounds again (see `confirm`)."""
    started = time.monotonic()
    statuses: dict[str, str] = {}
    total = [sum(2 * r for _, r in benches), 0]  # steps in all, steps done

    def measure(bench: str, rounds: int, first_round: int) -> dict[str, Pairs]:
        pairs: dict[str, Pairs] = {}
        for r in range(first_round, first_round + rounds):
            order = (base, head) if r % 2 == 0 else (head, base)
            docs: dict[str, dict[str, Any]] = {}
            for side in order:
                if progress:
                    what = "again" if first_round else f"round {r + 1}/{rounds}"
                    progress(f"{bench}: {what}, {side.name}", total[1], total[0])
                docs[side.name] = runner(side, bench, quick, scratch)
                total[1] += 1
            if on_head_run:
                on_head_run(docs["head"])
            status = docs["head"].get("benchmarks", {}).get(bench, {})
            if status.get("status", "ok") != "ok":
                statuses[bench] = f"{status.get('status')}: {status.get('note', '')}"
                total[1] += 2 * (first_round + rounds - r - 1)
                return {}
            base_status = docs["base"].get("benchmarks", {}).get(bench, {})
            if base_status.get("status") == "error":
                # Head ran and base cannot here (a kernel that refuses what base needs, say):
                # nothing to compare against, so head's figures are not judged. Said loudly.
                statuses[bench] = f"not compared: the base failed ({base_status.get('note')})"
                total[1] += 2 * (first_round + rounds - r - 1)
                return {}
            statuses[bench] = "ok"
            _add_round(pairs, docs["base"].get("metrics", {}), docs["head"]["metrics"])
        return pairs

    sigma_of = (spread or {}).get
    verdicts: dict[str, MetricVerdict] = {}
    with tempfile.TemporaryDirectory(prefix="shoal-ab-") as tmp:
        scratch = Path(tmp)
        measured = {bench: measure(bench, rounds, 0) for bench, rounds in benches}
        for pairs in measured.values():
            verdicts |= {name: judge(name, p, sigma_of(name)) for name, p in pairs.items()}
        for bench, rounds in benches:
            fired = [n for n in measured[bench] if verdicts[n].kind == "REGRESSED"]
            if not fired:
                continue
            more = max(
                rounds_to_resolve(
                    verdicts[n].sigma, float(measured[bench][n].spec.get("tolerance", 0.15)), rounds
                )
                for n in fired
            )
            total[0] += 2 * more
            again = measure(bench, more, rounds)
            for name in fired:
                if name not in again:  # the benchmark stopped: keep the first verdict
                    continue
                verdicts[name] = confirm(verdicts[name], again[name], sigma_of(name))
    return ABResult(
        base, head, quick, max((r for _, r in benches), default=0), machine.describe(),
        spread_source, [verdicts[n] for n in sorted(verdicts)], statuses,
        round(time.monotonic() - started, 1),
    )  # fmt: skip


def _add_round(
    pairs: dict[str, Pairs], base: dict[str, dict[str, Any]], head: dict[str, dict[str, Any]]
) -> None:
    """Adds one round's values; a metric one side lacks gets no pair this round."""
    for name, m in head.items():
        p = pairs.setdefault(name, Pairs(m))
        if name in base:
            p.base.append(float(base[name]["value"]))
            p.head.append(float(m["value"]))


# ---- the A/A spread per machine ----------------------------------------------------------


def spread_of(result: ABResult) -> dict[str, float]:
    """sigma per metric of an A/A run (base against itself), from its own pairs."""
    return {v.metric: v.own_sigma for v in result.verdicts if v.own_sigma is not None}


def load_spread(path: Path, key: str) -> tuple[dict[str, float] | None, str]:
    """(sigma per metric, where it came from) for this machine; for a machine without a
    record, the largest sigma recorded on any machine (a conservative stand-in)."""
    if not path.exists():
        return None, "no A/A record: this run's own pairs only"
    doc = json.loads(path.read_text())
    machines: dict[str, Any] = doc.get("machines", {})
    if key in machines:
        return dict(machines[key]["sigma"]), f"A/A record of this machine ({key})"
    if not machines:
        return None, "no A/A record: this run's own pairs only"
    widest: dict[str, float] = {}
    for rec in machines.values():
        for name, s in rec["sigma"].items():
            widest[name] = max(widest.get(name, 0.0), float(s))
    return widest, f"no A/A record for {key}: the widest of {len(machines)} other machine(s)"


def write_spread(path: Path, key: str, result: ABResult, runs: int) -> None:
    """Records an A/A run's sigmas into this machine's spread: per metric the widest of this
    run and those recorded before (a sigma from five rounds is itself noisy, and a record too
    tight fails good changes; delete the machine's entry to start over). Other machines are
    kept, and this machine's metrics the run did not measure (--only)."""
    doc: dict[str, Any] = {"schema": SPREAD_SCHEMA, "machines": {}}
    if path.exists():
        doc = json.loads(path.read_text())
    old = doc.setdefault("machines", {}).get(key, {})
    sigma = dict(old.get("sigma", {}))
    for name, own in spread_of(result).items():
        sigma[name] = round(max(own, float(sigma.get(name, 0.0))), 5)
    slowdown = dict(old.get("median_slowdown_pct", {})) | {
        v.metric: round(v.slowdown_pct, 2) for v in result.verdicts if v.slowdown_pct is not None
    }
    measured = dict(old.get("measured_by_metric", {})) | {
        name: f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {result.rounds} rounds, load "
        f"{os.getloadavg()[0]:.1f}"
        for name in spread_of(result)
    }
    doc["machines"][key] = {
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": result.head.commit,
        "mode": "quick" if result.quick else "full",
        "runs": runs,
        "sigma": dict(sorted(sigma.items())),
        "median_slowdown_pct": dict(sorted(slowdown.items())),
        "measured_by_metric": dict(sorted(measured.items())),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
