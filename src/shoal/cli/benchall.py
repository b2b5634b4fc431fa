"""`shoal bench all`: every benchmark, ratios against same-run floors, a regression gate
against the stored baseline, a JSON-lines history and an optional HTML report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from shoal.bench import gate, harness, machine
from shoal.cli.common import console, err_console, handle_errors

__all__ = ["all_command"]

STYLE = {
    gate.VerdictKind.regressed: "bold red",
    gate.VerdictKind.better: "green",
    gate.VerdictKind.missing: "yellow",
    gate.VerdictKind.new: "cyan",
    gate.VerdictKind.info: "dim",
    gate.VerdictKind.ok: "",
}


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def print_verdicts(verdicts: list[gate.Verdict], title: str) -> None:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("metric", no_wrap=True)
    for col in ("better", "baseline", "now", "change %", "verdict"):
        table.add_column(col, justify="left" if col == "verdict" else "right")
    for v in verdicts:
        change = "-" if v.change_pct is None else f"{v.change_pct:+.1f}"
        table.add_row(
            v.metric, v.direction, _num(v.baseline), _num(v.now), change, v.kind.value,
            style=STYLE[v.kind],
        )  # fmt: skip
    # CI logs are not terminals: no reason to squeeze the metric names into 80 columns.
    out = console if console.is_terminal else Console(file=console.file, width=110)
    out.print(table)


def print_statuses(doc: dict[str, Any]) -> None:
    for name, st in doc["benchmarks"].items():
        note = f" ({st['note']})" if st["note"] else ""
        colour = "green" if st["status"] == "ok" else "yellow"
        console.print(
            f"  [{colour}]{name}[/]: {st['status']}{note}, {st['seconds']} s", highlight=False
        )


class _Display:
    """Two bars on stderr: the whole run (what runs, what is left) and the current step."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.overall: TaskID = progress.add_task("benchmarks", total=total)
        self.current: TaskID = progress.add_task("", total=1.0)

    def __call__(self, step: harness.Step) -> None:
        left = f"; then {', '.join(step.left)}" if step.left else ""
        self.progress.update(
            self.overall,
            completed=step.index + step.fraction,
            description=f"{step.bench.name} {step.repeat}/{step.repeats}{left}",
        )
        self.progress.update(self.current, completed=step.fraction, description=step.what)


@handle_errors
def all_command(
    quick: Annotated[bool, typer.Option(help="small sizes, 3 repeats (CI: < 5 minutes)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    report: Annotated[
        Path | None, typer.Option(help="write an HTML report (index.html, PNGs) into DIR")
    ] = None,
    repeats: Annotated[
        int | None, typer.Option(min=1, help="repeats per benchmark (default 3 quick, 5 full)")
    ] = None,
    baseline: Annotated[Path, typer.Option(help="baseline to gate against")] = Path(
        "bench/baseline.json"
    ),
    update_baseline: Annotated[
        bool, typer.Option(help="store this run as the baseline of its mode")
    ] = False,
    history: Annotated[Path, typer.Option(help="JSON-lines history to append to")] = Path(
        "bench-results/history.jsonl"
    ),
    only: Annotated[
        list[str] | None, typer.Option(help="run only this benchmark (repeatable)")
    ] = None,
) -> None:
    """Every benchmark as ratios against same-run floors; exit 1 when a metric is more than
    its tolerance (15%) worse than this machine's baseline, or a benchmark failed. (The CI
    gate is `shoal bench gate`: the change against its base, on the same machine.)"""
    try:
        benches = harness.benchmarks(only)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    n = repeats or (3 if quick else 5)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        doc = harness.run_all(
            benches, quick=quick, repeats=n, progress=_Display(progress, len(benches) * n)
        )
    mode = doc["mode"]
    base, which = gate.load_baseline(baseline, mode, machine.key(doc["machine"]))
    verdicts = gate.compare(doc["metrics"], base)
    doc["gate"] = {
        "baseline": str(baseline),
        "against": which,
        "failed": gate.failed(verdicts),
        "verdicts": [v.__dict__ | {"kind": v.kind.value} for v in verdicts],
    }
    harness.append_history(history, doc)
    if update_baseline:
        gate.write_baseline(baseline, mode, doc)
    if report is not None:
        from shoal.bench.report import write_report

        write_report(report, harness.load_history(history, doc["machine"]), doc, verdicts)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        print_statuses(doc)
        print_verdicts(verdicts, f"Against the {which}" if base else which)
        console.print(f"history: {history}" + (f"; report: {report}/index.html" if report else ""))
        if update_baseline:
            console.print(f"baseline ({mode}) written to {baseline}")
    errors = [n for n, st in doc["benchmarks"].items() if st["status"] == "error"]
    if errors:
        err_console.print(f"[red]benchmark(s) failed: {', '.join(errors)}[/]")
        raise typer.Exit(1)
    if doc["gate"]["failed"] and not update_baseline:
        err_console.print("[red]regression: a metric is worse than its baseline allows[/]")
        raise typer.Exit(1)
