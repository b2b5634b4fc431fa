"""The regression gate: every gated metric against the stored baseline of the same mode.

A metric fails when it is worse than its baseline by more than its tolerance (15% unless the
metric says otherwise), in its own direction: a ratio where lower is better fails upwards, a
ratio where higher is better downwards. A gated metric the baseline has but this run lacks is
reported as missing (not a failure: the benchmark said why it was skipped); a metric the
baseline lacks is new. The baseline file holds one section per machine (CPU model, cores,
kernel: figures from one do not judge another) and per mode (quick, full: the sizes differ),
and the reference commit of the A/B gate (`bench.ab`), which is what CI gates with; this
comparison is the fallback where no base can be built, and "how fast is it here"."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from shoal.bench import machine
from shoal.bench.registry import TOLERANCE, Direction

__all__ = [
    "Verdict",
    "VerdictKind",
    "compare",
    "failed",
    "load_baseline",
    "reference_commit",
    "write_baseline",
]

SCHEMA = "shoal-bench-baseline/2"


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


def _machines(doc: dict[str, Any]) -> dict[str, Any]:
    """machine key -> {"modes": ...}; a file of the first schema (modes at the top, one
    machine) is read as that machine's."""
    if "machines" in doc:
        return dict(doc["machines"])
    machines: dict[str, Any] = {}
    for mode, section in doc.get("modes", {}).items():
        key = machine.key(section.get("machine") or {})
        machines.setdefault(key, {"modes": {}})["modes"][mode] = section
    return machines


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def load_baseline(
    path: Path, mode: str, key: str | None = None
) -> tuple[dict[str, dict[str, Any]] | None, str]:
    """(the baseline metrics of this mode on this machine, or None; a line saying which)."""
    key = key or machine.key(machine.describe())
    machines = _machines(_read(path))
    section = machines.get(key, {}).get("modes", {}).get(mode)
    if section is not None:
        return dict(section["metrics"]), f"baseline of this machine ({key}), {section['created']}"
    others = [k for k, m in machines.items() if mode in m.get("modes", {})]
    if others:
        return None, f"no {mode} baseline for this machine ({key}); there are for: " + "; ".join(
            others
        )
    return None, f"no {mode} baseline yet"


def reference_commit(path: Path) -> str | None:
    """The commit the A/B gate measures a change against when nothing else names a base."""
    ref = _read(path).get("reference") or {}
    return ref.get("commit") or None


def write_baseline(
    path: Path, mode: str, result: dict[str, Any], note: str = "one run", reference: bool = True
) -> None:
    """Stores this run's metrics as this machine's baseline of its mode, keeping the other
    machines' and modes'; with reference, this run's commit becomes the gate's reference."""
    old = _read(path)
    doc: dict[str, Any] = {"schema": SCHEMA, "reference": old.get("reference"),
                           "machines": _machines(old)}  # fmt: skip
    keep = ("value", "direction", "tolerance", "gate", "unit")
    key = machine.key(result.get("machine") or {})
    doc["machines"].setdefault(key, {"modes": {}})["modes"][mode] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": note,
        "machine": result.get("machine"),
        "git": result.get("git"),
        "repeats": result.get("repeats"),
        "metrics": {
            name: {k: m[k] for k in keep if k in m} for name, m in result["metrics"].items()
        },
    }
    commit = (result.get("git") or {}).get("commit")
    if reference and commit:
        doc["reference"] = {"commit": commit, "set": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
