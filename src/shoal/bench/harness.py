"""`shoal bench all`: runs every benchmark `repeats` times and keeps, per metric, the median of
its repeats, in one JSON document with the machine and the commit; appends it to a history.

The gate (gate.py) and the report (report.py) read these documents; nothing here judges."""

from __future__ import annotations

import functools
import json
import os
import statistics
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shoal.bench import machine
from shoal.bench.registry import BenchContext, Benchmark, Metric, NotAvailable, registered
from shoal.bench.suites import BUILTIN

__all__ = [
    "SCHEMA",
    "Step",
    "append_history",
    "benchmarks",
    "load_history",
    "merged",
    "run_all",
]

SCHEMA = "shoal-bench/1"


def benchmarks(names: Sequence[str] | None = None) -> list[Benchmark]:
    """The built-in benchmarks with registered ones in their place, then the other
    registered ones; only `names` when given (unknown names are a ValueError)."""
    plugged = registered()
    out = [plugged.pop(b.name, b) for b in BUILTIN] + list(plugged.values())
    if names:
        unknown = set(names) - {b.name for b in out}
        if unknown:
            known = ", ".join(b.name for b in out)
            raise ValueError(f"unknown benchmark(s) {', '.join(sorted(unknown))}; known: {known}")
        out = [b for b in out if b.name in names]
    return out


@dataclass(frozen=True)
class Step:
    """Where a run is, for a progress display."""

    bench: Benchmark
    repeat: int  # 1-based
    repeats: int
    index: int  # 0-based position among all (benchmark, repeat) steps
    total: int
    what: str  # what the benchmark says it is doing
    fraction: float  # of this step
    left: list[str]  # benchmarks still to come after this one


def _metric_doc(metric: Metric, samples: list[float], bench: str) -> dict[str, Any]:
    doc = asdict(metric)
    doc.update(value=statistics.median(samples), samples=samples, benchmark=bench)
    return doc


def _run_one(
    bench: Benchmark, quick: bool, repeats: int, report: Callable[[int, str, float], None]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Status document and metric documents of one benchmark's repeats."""
    started = time.perf_counter()
    status: dict[str, Any] = {"title": bench.title, "status": "ok", "note": "", "info": {}}
    samples: dict[str, list[float]] = {}
    specs: dict[str, Metric] = {}
    if bench.needs_root and os.geteuid() != 0:
        status.update(status="skipped", note="needs root (BPF, XDP, network namespaces)")
    if bench.max_repeats is not None:
        repeats = min(repeats, bench.max_repeats)
    for r in range(repeats if status["status"] == "ok" else 0):
        ctx = BenchContext(quick, functools.partial(report, r))
        report(r, "starting", 0.0)
        try:
            outcome = bench.run(ctx)
        except NotAvailable as exc:
            status.update(status="not available", note=str(exc))
            break
        except Exception as exc:  # one broken benchmark must not hide the others' results
            status.update(status="error", note=f"{type(exc).__name__}: {exc}")
            status["traceback"] = traceback.format_exc()
            break
        for m in outcome.metrics:
            samples.setdefault(m.name, []).append(m.value)
            specs.setdefault(m.name, m)
        status["info"] = outcome.info  # the last repeat's details
        report(r, "done", 1.0)
    status["seconds"] = round(time.perf_counter() - started, 2)
    metrics = {n: _metric_doc(specs[n], s, bench.name) for n, s in samples.items()}
    return status, metrics


def run_all(
    benches: Sequence[Benchmark],
    *,
    quick: bool,
    repeats: int,
    progress: Callable[[Step], None] | None = None,
) -> dict[str, Any]:
    """Runs the benchmarks; returns the result document (see docs/performance.md)."""
    started = time.time()
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "mode": "quick" if quick else "full",
        "repeats": repeats,
        "machine": machine.describe(),
        "git": machine.git_commit(),
        "benchmarks": {},
        "metrics": {},
    }
    total = len(benches) * repeats
    for i, bench in enumerate(benches):
        left = [b.name for b in benches[i + 1 :]]

        def report(r: int, what: str, fraction: float, i: int = i, bench: Benchmark = bench,
                   left: list[str] = left) -> None:  # fmt: skip
            if progress:
                progress(Step(bench, r + 1, repeats, i * repeats + r, total, what, fraction, left))

        status, metrics = _run_one(bench, quick, repeats, report)
        doc["benchmarks"][bench.name] = status
        doc["metrics"].update(metrics)
    doc["seconds"] = round(time.time() - started, 1)
    return doc


def merged(docs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """One result document from several one-repeat runs of the same tree (the A/B gate's
    head side): per metric, every run's value as a sample and their median as the value."""
    if not docs:
        return None
    out = dict(docs[0], benchmarks={}, metrics={})
    samples: dict[str, list[float]] = {}
    for doc in docs:
        out["benchmarks"].update(doc.get("benchmarks", {}))
        for name, m in doc.get("metrics", {}).items():
            samples.setdefault(name, []).append(float(m["value"]))
            out["metrics"].setdefault(name, dict(m))
    for name, values in samples.items():
        out["metrics"][name].update(value=statistics.median(values), samples=values)
    out["repeats"] = max((len(v) for v in samples.values()), default=0)
    return out


def append_history(path: Path, doc: dict[str, Any]) -> None:
    """Adds the run to a JSON-lines history (the details of each benchmark are kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(doc, sort_keys=True) + "\n")


def load_history(path: Path, on: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every run recorded in the history, oldest first, only those of machine `on` (a
    machine.describe()) when given; unreadable lines are skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(item, dict) or item.get("schema") != SCHEMA:
            continue
        if on is None or machine.key(item.get("machine") or {}) == machine.key(on):
            out.append(item)
    return out
