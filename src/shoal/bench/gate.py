"""The regression gate: every gated metric against the stored baseline of the same mode.

A metric fails when it is worse than its baseline by more than its tolerance (15% unless the
metric says otherwise), in its own direction: a ratio where lower is better fails upwards, a
ratio where higher is better downwards. A gated metric the baseline has but this run lacks is
reported as missing (not a failure: the benchmark said why it was skipped); a metric the
baseline lacks is new. The baseline file holds one section per mode (quick, full), because
the sizes differ."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from shoal.bench.registry import TOLERANCE, Direction

__all__ = ["Verdict", "VerdictKind", "compare", "failed", "load_baseline", "write_baseline"]

SCHEMA = "shoal-bench-baseline/1"


class VerdictKind(StrEnum):
    ok = "ok"
    better = "better"
    regressed = "REGRESSED"
    missing = "missing"
    new = "new"
    info = "info"  # not gated


@dataclass(frozen=True)
class Verdict:
    metric: str
    baseline: float | None
    now: float | None
    change_pct: float | None  # (now - baseline) / baseline, in %
    direction: str
    tolerance: float
    kind: VerdictKind


def _judge(now: float, base: float, direction: str, tolerance: float) -> VerdictKind:
    if base == 0:
        return VerdictKind.ok
    worse = (now - base) / base if direction == Direction.LOWER else (base - now) / base
    if worse > tolerance:
        return VerdictKind.regressed
    if worse < -tolerance:
        return VerdictKind.better
    return VerdictKind.ok


def compare(
    metrics: dict[str, dict[str, Any]], baseline: dict[str, dict[str, Any]] | None
) -> list[Verdict]:
    """One verdict per metric of this run or of the baseline, sorted by name."""
    base = baseline or {}
    out = []
    for name in sorted(set(metrics) | set(base)):
        cur, ref = metrics.get(name), base.get(name)
        spec = cur or ref or {}
        direction = str(spec.get("direction", Direction.LOWER))
        tolerance = float(spec.get("tolerance", TOLERANCE))
        now = None if cur is None else float(cur["value"])
        was = None if ref is None else float(ref["value"])
        change = None if now is None or not was else (now - was) / was * 100
        if not spec.get("gate", True):
            kind = VerdictKind.info
        elif now is None:
            kind = VerdictKind.missing
        elif was is None:
            kind = VerdictKind.new
        else:
            kind = _judge(now, was, direction, tolerance)
        out.append(Verdict(name, was, now, change, direction, tolerance, kind))
    return out


def failed(verdicts: list[Verdict]) -> bool:
    return any(v.kind is VerdictKind.regressed for v in verdicts)


def load_baseline(path: Path, mode: str) -> dict[str, dict[str, Any]] | None:
    """The baseline metrics of this mode ("quick" or "full"), None when there are none."""
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    section = doc.get("modes", {}).get(mode)
    return None if section is None else dict(section["metrics"])


def write_baseline(path: Path, mode: str, result: dict[str, Any], note: str = "one run") -> None:
    """Stores this run's metrics as the baseline of its mode, keeping the other mode's."""
    doc: dict[str, Any] = {"schema": SCHEMA, "modes": {}}
    if path.exists():
        doc = json.loads(path.read_text())
    keep = ("value", "direction", "tolerance", "gate", "unit")
    doc.setdefault("modes", {})[mode] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": note,
        "machine": result.get("machine"),
        "git": result.get("git"),
        "repeats": result.get("repeats"),
        "metrics": {
            name: {k: m[k] for k in keep if k in m} for name, m in result["metrics"].items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
