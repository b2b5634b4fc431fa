"""What a benchmark of `shoal bench all` is, and the registry that plugs new ones in.

A benchmark is a function of a BenchContext that returns an Outcome (metrics plus JSON-able
details), or raises NotAvailable when it cannot run here (a tier not built yet, a missing
tool). The built-in ones live in `shoal.bench.suites`; another module adds one, or replaces
the built-in of the same name, with `register(Benchmark(...))`. The harness runs them all,
`repeats` times."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "BenchContext",
    "Benchmark",
    "Direction",
    "Metric",
    "NotAvailable",
    "Outcome",
    "register",
    "registered",
]

TOLERANCE = 0.15  # the gate fails a metric more than 15% worse than its baseline


class Direction(StrEnum):
    LOWER = "lower"  # lower is better
    HIGHER = "higher"  # higher is better


@dataclass(frozen=True)
class Metric:
    """One figure of one run. Gated metrics are ratios against floors of the same run; the
    others (gate=False) are for information and plots only."""

    name: str
    value: float
    direction: Direction
    description: str
    unit: str = "x"
    gate: bool = True
    tolerance: float = TOLERANCE  # widened per metric only with a reason in its description


@dataclass
class Outcome:
    metrics: list[Metric]
    info: dict[str, Any] = field(default_factory=dict)  # details for the JSON and the report


class NotAvailable(Exception):  # noqa: N818 - a state, not an error
    """The benchmark cannot run here; the message says why (shown in the results)."""


@dataclass(frozen=True)
class BenchContext:
    quick: bool
    progress: Callable[[str, float], None]  # (what runs now, fraction of this benchmark done)


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    run: Callable[[BenchContext], Outcome]
    needs_root: bool = False
    # At most this many repeats per `shoal bench all` run (a suite of minutes runs once).
    max_repeats: int | None = None


_REGISTRY: dict[str, Benchmark] = {}


def register(bench: Benchmark) -> Benchmark:
    """Adds a benchmark; one with a built-in's name replaces it."""
    _REGISTRY[bench.name] = bench
    return bench


def registered() -> dict[str, Benchmark]:
    """The benchmarks registered by other modules, by name."""
    return dict(_REGISTRY)
