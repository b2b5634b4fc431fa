"""`shoal bench gate`: the CI performance gate. The change (this checkout, uncommitted edits
included) against its base commit, built next to it and measured interleaved on this machine
(`bench.ab`); `--aa` measures HEAD against itself and records the spread."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shoal.bench import ab, base, gate, harness, machine
from shoal.bench.machine import SOURCE_ROOT
from shoal.cli.benchall import all_command
from shoal.cli.common import console, err_console, handle_errors

__all__ = ["ROUNDS", "gate_command", "print_ab"]

# Rounds per benchmark in quick mode (full: 5 each). l7 builds a lab per run (about 25 s):
# two rounds keep the whole gate near 5 minutes on 2 cores. scale builds two fleets per run
# (90 s idle, 210 s under a colleague's load): one round (base, then head); its gated bytes
# ratio is exact, its CPU ratio has a 30% tolerance.
ROUNDS = {"dataplane": 3, "control": 3, "e2e": 3, "l7": 2, "scale": 1}
FULL_ROUNDS = 5
STYLE = {"REGRESSED": "bold red", "unconfirmed": "yellow", "better": "green", "new": "cyan",
         "info": "dim", "ok": ""}  # fmt: skip


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def print_ab(result: ab.ABResult) -> None:
    b, h = result.base, result.head
    title = (
        f"head ({h.commit[:12] if h.commit else 'working tree'}) against base "
        f"({b.commit[:12] if b.commit else '?'}), {result.rounds} interleaved rounds; "
        f"noise: {result.spread_source}"
    )
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("metric", no_wrap=True)
    for col in ("better", "base", "head", "slowdown %", "tolerance %", "again %", "verdict"):
        table.add_column(col, justify="left" if col == "verdict" else "right")
    for v in result.verdicts:
        table.add_row(
            v.metric, v.direction, _num(v.base), _num(v.head), _pct(v.slowdown_pct),
            f"{v.tolerance * 100:.1f}", _pct(v.confirm_slowdown_pct), v.kind,
            style=STYLE.get(v.kind, ""),
        )  # fmt: skip
    out = console if console.is_terminal else Console(file=console.file, width=140)
    out.print(table)
    for name, status in result.statuses.items():
        if status != "ok":
            console.print(f"  {name}: {status}", highlight=False)
    # Last, so that a log's tail (all a CI summary may keep) names what fired.
    for v in result.verdicts:
        if v.confirm_slowdown_pct is not None:
            console.print(_fired_line(v), style=STYLE.get(v.kind, ""), highlight=False)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:+.1f}"


def _fired_line(v: ab.MetricVerdict) -> str:
    again = f"{_pct(v.confirm_slowdown_pct)}% against {(v.confirm_tolerance or 0) * 100:.1f}%"
    outcome = "regressed again: REGRESSED" if v.kind == "REGRESSED" else "did not repeat: noise"
    return (
        f"{v.metric}: {_pct(v.slowdown_pct)}% against a {v.tolerance * 100:.1f}% tolerance; "
        f"measured again, {again}; {outcome}"
    )


@handle_errors
def gate_command(
    quick: Annotated[bool, typer.Option("--quick/--full", help="benchmark sizes")] = True,
    base_ref: Annotated[
        str | None,
        typer.Option("--base", help="commit to judge against (default: see docs/performance.md)"),
    ] = None,
    rounds: Annotated[
        int | None, typer.Option(min=2, help="interleaved rounds per benchmark")
    ] = None,
    only: Annotated[list[str] | None, typer.Option(help="only this benchmark (repeatable)")] = None,
    aa: Annotated[
        bool, typer.Option("--aa", help="HEAD against itself: the noise, nothing to judge")
    ] = False,
    record_spread: Annotated[
        bool, typer.Option(help="with --aa: store the spread as this machine's")
    ] = False,
    always: Annotated[
        bool, typer.Option(help="measure even when no performance-relevant file changed")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    baseline: Annotated[Path, typer.Option(help="baseline file (reference commit)")] = Path(
        "bench/baseline.json"
    ),
    spread: Annotated[Path, typer.Option(help="A/A spread per machine")] = Path(
        "bench/aa-spread.json"
    ),
    history: Annotated[Path, typer.Option(help="JSON-lines history to append to")] = Path(
        "bench-results/history.jsonl"
    ),
) -> None:
    """Exit 1 when a gated metric of the change is slower than its base by more than the
    noise allows (3 standard errors, at least 3%, at most the metric's 15%)."""
    names = [b.name for b in harness.benchmarks(only)]
    per_bench = {n: rounds or (ROUNDS.get(n, 3) if quick else FULL_ROUNDS) for n in names}
    head_commit = base.git("rev-parse", "HEAD", check=False) or None
    if aa:
        if head_commit is None:
            raise typer.BadParameter("--aa needs a commit to measure against itself")
        dirty = base.changed_since(head_commit)
        if dirty:
            err_console.print(f"[yellow]not an A/A: uncommitted changes in {', '.join(dirty)}[/]")
        choice: base.BaseChoice | None = base.BaseChoice(head_commit, "HEAD itself (A/A)")
    else:
        choice = base.choose_base(base_ref, gate.reference_commit(baseline))
    if choice is None:
        err_console.print(
            "no base commit to measure against (no git history, no upstream, no reference "
            f"in {baseline}): falling back to the committed baseline of this machine"
        )
        all_command(quick=quick, as_json=as_json, report=None, repeats=None, baseline=baseline,
                    update_baseline=False, history=history, only=only)  # fmt: skip
        return
    if not aa and not always:
        changed = base.changed_since(choice.commit)
        if not changed:
            console.print(
                f"base {choice.commit[:12]} ({choice.why}): nothing under "
                f"{', '.join(base.PERFORMANCE_PATHS)} differs, so there is nothing to measure"
            )
            return
    key = machine.key(machine.describe())
    sigma, source = ab.load_spread(spread, key)
    err_console.print(f"base {choice.commit[:12]}: {choice.why}; building it")
    head_runs: list[dict[str, Any]] = []
    with base.built_tree(choice.commit) as tree:
        sides = (
            ab.Side("base", tree, choice.commit),
            ab.Side("head", SOURCE_ROOT, head_commit),
        )
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(), console=err_console, transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task("", total=1)

            def show(what: str, done: int, total: int) -> None:
                progress.update(task, description=what, completed=done, total=total)

            result = ab.run_rounds(
                *sides, list(per_bench.items()), quick=quick, spread=sigma, spread_source=source,
                progress=show, on_head_run=head_runs.append,
            )  # fmt: skip
    doc = harness.merged(head_runs)
    if doc is not None:
        harness.append_history(history, doc | {"gate": {"ab": result.as_dict()}})
    if aa and record_spread:
        ab.write_spread(spread, key, result, runs=1)
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n")
    else:
        print_ab(result)
        console.print(f"{result.seconds:.0f} s; history: {history}", highlight=False)
        if aa and record_spread:
            console.print(f"A/A spread of {key} written to {spread}", highlight=False)
    if result.failed:
        err_console.print(
            "[red]the gate fired on no change: its tolerance is too tight for this noise[/]"
            if aa
            else "[red]regression: the change is slower than its base beyond the noise[/]"
        )
        raise typer.Exit(1)
