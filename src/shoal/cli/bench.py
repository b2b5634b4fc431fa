"""`shoal bench`: performance measurements, reported as ratios against same-run baselines."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from shoal.bench import control as ctl
from shoal.bench import dataplane as dp
from shoal.bench import katran
from shoal.cli.benchall import all_command
from shoal.cli.benchgate import gate_command
from shoal.cli.common import console, handle_errors, require_root

app = typer.Typer(help="Benchmarks (never asserted in tests).", no_args_is_help=True)


PLAIN_EVERY = 10.0  # seconds between progress lines with --json


@contextlib.contextmanager
def _progress(first: str, quiet: bool) -> Iterator[Callable[[str, float], None]]:
    """A progress bar fed by a benchmark's (what, fraction) callback. With --json (stdout
    holds the document) a plain line on stderr at most every PLAIN_EVERY s instead, so a
    run of an hour still shows where it is."""
    if quiet:
        last = [-PLAIN_EVERY]

        def plain(what: str, fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] >= PLAIN_EVERY:
                last[0] = now
                sys.stderr.write(f"{time.strftime('%H:%M:%S')} {fraction:4.0%} {what}\n")
                sys.stderr.flush()

        yield plain
        return
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(first, total=1.0)

        def report(what: str, fraction: float) -> None:
            progress.update(task, description=what, completed=fraction)

        yield report


app.command("all")(all_command)
app.command("gate")(gate_command)


def print_dataplane(result: dp.DataplaneBench) -> None:
    table = Table(
        title=f"XDP paths: {result.calls_per_path} test runs each (repeat=1), CPU {result.cpu}, "
        f"kernel {result.kernel}; floor = trivial XDP_PASS, {result.floor_plain_ns:.1f} ns "
        f"(trimmed {result.floor_ns:.1f}); Maglev tables of {result.table_size} slots",
        title_justify="left",
    )
    cols = ("path", "mean", "- floor", "trimmed", "- floor", "Katran row", "ns", "ratio", "trim")
    for col in (*cols, "<= 0.8x?"):
        table.add_column(col, justify="left" if col in ("path", "Katran row") else "right")
    for p in result.paths:
        table.add_row(
            p.path,
            f"{p.plain_mean_ns:.1f}",
            f"{p.plain_above_floor_ns:.1f}",
            f"{p.mean_ns:.1f}",
            f"{p.above_floor_ns:.1f}",
            p.katran_row or "-",
            "-" if p.katran_ns is None else f"{p.katran_ns:.0f}",
            "-" if p.ratio_to_katran is None else f"{p.ratio_to_katran:.2f}",
            "-" if p.ratio_trimmed is None else f"{p.ratio_trimmed:.2f}",
            p.verdict,
        )
    console.print(table)
    for p in result.paths:
        console.print(f"  {p.path}: {p.description}", highlight=False)
    console.print(
        "  ratio: plain mean above the plain floor / Katran like for like (REFERENCE.md); "
        "trim: the same with 1%..99% trimmed means",
        highlight=False,
    )
    if result.katran_same_run:
        print_katran_same_run(result.katran_same_run)
    if result.maglev_build_ms is None or result.maglev_build_ms_m655373 is None:
        return
    console.print(
        f"Maglev build, N=1000: {result.maglev_build_ms:.2f} ms (M=65537), "
        f"{result.maglev_build_ms_m655373:.1f} ms (M=655373); paper: 1.8 ms and 22.9 ms"
    )


def print_katran_same_run(rows: list[dp.SameRunRow]) -> None:
    table = Table(
        title="Against Katran, same run (same frames, same floor): ns above the floor",
        title_justify="left",
    )
    cols = ("path", "Katran build", "Shoal", "Katran", "ratio", "rounds", "Shoal trim")
    for col in (*cols, "Katran trim", "trim ratio", "Katran actions"):
        table.add_column(col, justify="left" if col in ("path", "Katran build") else "right")
    for r in rows:
        table.add_row(
            r.path,
            r.katran_row,
            f"{r.shoal_ns:.1f}",
            f"{r.katran_ns:.1f}",
            f"{r.ratio:.2f}",
            f"{r.ratio_rounds[0]:.2f}-{r.ratio_rounds[1]:.2f}",
            f"{r.shoal_trimmed_ns:.1f}",
            f"{r.katran_trimmed_ns:.1f}",
            f"{r.ratio_trimmed:.2f}",
            r.katran_verdict,
        )
    console.print(table)


@app.command("dataplane")
@handle_errors
def dataplane(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    quick: Annotated[bool, typer.Option(help="fewer samples (CI)")] = False,
    calls: Annotated[int | None, typer.Option(help="test runs per path")] = None,
    katran_object: Annotated[
        str | None,
        typer.Option(
            help="Katran balancer objects built outside Shoal, INSERTING[,NOT_INSERTING] "
            "(MAX_CONN_RATE 10^9 and 0): measured in the same run (docs/performance.md)"
        ),
    ] = None,
    sessions: Annotated[
        int | None,
        typer.Option(min=1, help="session-table entries (Shoal's and each Katran LRU)"),
    ] = None,
    table_size: Annotated[
        int | None,
        typer.Option(
            help="slots of the bench VIPs' Maglev tables, a prime (default: what the "
            "controller gives ten backends; Katran's ring is 65537 whatever this says)"
        ),
    ] = None,
) -> None:
    """ns per packet for each XDP path, minus a trivial program's floor, against Katran."""
    require_root("running BPF programs")
    objects = katran.parse_objects(katran_object) if katran_object else []
    n = calls or (20_000 if quick else 200_000)
    with _progress("data-plane paths", as_json) as report:
        result = dp.run(
            calls=n,
            progress=report,
            katran_objects=objects,
            sessions=sessions,
            table_size=table_size,
        )
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict(), indent=2) + "\n")
    else:
        print_dataplane(result)


@app.command("control")
@handle_errors
def control(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    quick: Annotated[bool, typer.Option(help="100 load balancers instead of 1,000")] = False,
    lbs: Annotated[int | None, typer.Option(help="load balancers to create")] = None,
    members: Annotated[int, typer.Option(help="members per load balancer")] = 10,
    db: Annotated[str, typer.Option(help="sqlite or postgresql")] = "sqlite",
) -> None:
    """Write latency through the API and agents' full-state fetch time (targets: write p99
    under 50 ms on SQLite, full state for 1,000 load balancers under 1 s)."""
    if db not in ("sqlite", "postgresql"):
        raise typer.BadParameter("--db must be sqlite or postgresql")
    if db == "postgresql":
        require_root("a throwaway PostgreSQL")
    n = lbs or (100 if quick else 1000)
    with _progress("starting the controller", as_json) as report:
        result = ctl.run(n, members, db, report)
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict(), indent=2) + "\n")
        return
    table = Table(
        title=f"Controller on {db}: {n} L4 load balancers x {members} members, "
        f"{result.writes} API writes",
        title_justify="left",
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("write latency p50", f"{result.write_p50_ms:.1f} ms", "")
    table.add_row(
        "write latency p99", f"{result.write_p99_ms:.1f} ms", "< 50 ms" if db == "sqlite" else ""
    )
    table.add_row("write latency max", f"{result.write_max_ms:.1f} ms", "")
    table.add_row("writes per second (one client)", f"{result.writes_per_second:.0f}", "")
    table.add_row(
        "agent full-state fetch",
        f"{result.full_state_ms:.0f} ms ({result.full_state_bytes / 1e6:.1f} MB)",
        "< 1 s for 1,000",
    )
    table.add_row("write -> long-poll wake-up p50", f"{result.notify_p50_ms:.1f} ms", "")
    table.add_row("write -> long-poll wake-up p99", f"{result.notify_p99_ms:.1f} ms", "")
    console.print(table)


@app.command("l7")
@handle_errors
def l7(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    duration: Annotated[float, typer.Option(min=1, help="seconds per wrk run")] = 5.0,
    connections: Annotated[int, typer.Option(min=1, help="wrk connections")] = 64,
    rounds: Annotated[int, typer.Option(min=1, help="alternating rounds (median)")] = 3,
) -> None:
    """HTTP requests per second through router, L4 and L7 tiers against HAProxy alone
    serving the same servers (target: at least 0.9x), in a lab of its own."""
    require_root("the lab")
    from shoal.bench import l7 as l7bench

    with _progress("starting", as_json) as report:
        result = l7bench.run(duration, connections, rounds, report)
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict(), indent=2) + "\n")
        return
    table = Table(
        title=f"HTTP through Shoal vs HAProxy alone: wrk -c{connections}, {rounds} x "
        f"{duration:g} s each, alternating (median)",
        title_justify="left",
    )
    for col in ("path", "requests/s", "p50", "p99", "errors"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for label, runs in (
        ("client→router→L4→L7→server", result.full_path),
        ("client→router→HAProxy→server", result.haproxy_alone),
    ):
        rps = sorted(r.requests_per_second for r in runs)[len(runs) // 2]
        mid = min(runs, key=lambda r: abs(r.requests_per_second - rps))
        table.add_row(
            label,
            f"{rps:.0f}",
            f"{mid.latency_p50_ms:.2f} ms",
            f"{mid.latency_p99_ms:.2f} ms",
            str(sum(r.errors for r in runs)),
        )
    console.print(table)
    verdict = "meets" if result.ratio >= 0.9 else "misses"
    rounds_text = ", ".join(f"{r:.2f}" for r in result.round_ratios)
    console.print(
        f"ratio {result.ratio:.2f} (median of rounds: {rounds_text}): {verdict} the 0.9x target"
    )


def _sizes_option(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        sizes = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise typer.BadParameter("--sizes takes numbers separated by commas") from None
    if not sizes or min(sizes) < 1:
        raise typer.BadParameter("--sizes needs at least one positive number")
    return sizes


def print_scale(results: list[Any], growth: dict[str, float], controllers: int) -> None:
    table = Table(
        title=f"Two L4 agents with real data planes, {controllers} controller process(es) on "
        "PostgreSQL; member change = one member's weight 0/1",
        title_justify="left",
    )
    table.add_column("figure")
    for r in results:
        table.add_column(f"{r.load_balancers:,} LBs", justify="right")
    table.add_column("growth", justify="right")
    rows = [
        ("API -> applied on every L4 node p50", "apply_p50_ms", "apply_p50", "{:.0f} ms"),
        ("API -> applied on every L4 node p99", "apply_p99_ms", "apply_p99", "{:.0f} ms"),
        ("agent CPU per change", "agent_cpu_ms_per_change", "agent_cpu_per_change", "{:.1f} ms"),
        ("controller CPU per change", "controller_cpu_ms_per_change",
         "controller_cpu_per_change", "{:.1f} ms"),
        ("bytes per change per agent", "bytes_per_change", "bytes_per_change", "{:,.0f}"),
        ("map memory per node", "map_bytes_per_node", "map_bytes_per_node", "{:,.0f}"),
        ("first full sync", "first_sync_s", "first_sync", "{:.1f} s"),
        ("creating through the API", "create_s", "", "{:.0f} s"),
    ]  # fmt: skip
    for label, attr, stem, fmt in rows:
        ratio = growth.get(stem)
        table.add_row(
            label,
            *(fmt.format(getattr(r, attr)) for r in results),
            "-" if ratio is None else f"{ratio:.2f}x",
        )
    console.print(table)
    for r in results:
        if r.churn:
            c = r.churn
            console.print(
                f"churn at {r.load_balancers:,}: {c['changes']} changes at {c['rate_per_s']:g}/s "
                f"for {c['seconds']:g} s: lag p50 {c['lag_p50_ms']:.0f} ms, p99 "
                f"{c['lag_p99_ms']:.0f} ms, max {c['lag_max_ms']:.0f} ms"
                + ("" if c["drained"] else f"; {c['still_pending']} never applied (lower bound)"),
                highlight=False,
            )


@app.command("scale")
@handle_errors
def scale(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    quick: Annotated[bool, typer.Option(help="10 and 100 load balancers, short churn")] = False,
    sizes: Annotated[
        str | None, typer.Option(help="load balancers per run, e.g. 100,1000,10000")
    ] = None,
    changes: Annotated[int | None, typer.Option(min=1, help="sequential member changes")] = None,
    churn_rate: Annotated[float | None, typer.Option(min=0.1, help="churn changes/s")] = None,
    churn_seconds: Annotated[float | None, typer.Option(min=1, help="churn duration")] = None,
    churn_size: Annotated[
        int | None, typer.Option(help="the size that gets the churn run (default: largest)")
    ] = None,
    controllers: Annotated[
        int | None,
        typer.Option(
            min=1, max=2, help="controller processes: 2 (default), the tenants' and the agents'"
        ),
    ] = None,
) -> None:
    """Cost of one member change against the number of load balancers: API-to-applied on
    every L4 node, agent and controller CPU, bytes per agent, map memory, first sync, churn lag
    (targets at 10,000: p99 < 1 s, agent CPU < 20 ms, bytes flat, churn lag p99 < 1 s)."""
    require_root("XDP data planes in network namespaces and a throwaway PostgreSQL")
    import dataclasses

    from shoal.bench import scale as sc

    plan = sc.QUICK if quick else sc.FULL
    overrides: dict[str, Any] = {
        "sizes": _sizes_option(sizes),
        "changes": changes,
        "churn_rate": churn_rate,
        "churn_seconds": churn_seconds,
        "churn_size": churn_size,
        "controllers": controllers,
    }
    plan = dataclasses.replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    if plan.churn_size is not None and plan.churn_size not in plan.sizes:
        raise typer.BadParameter("--churn-size must be one of --sizes")
    with _progress("starting", as_json) as report:
        results = sc.run(plan, report)
    growth = sc.growth(results)
    if as_json:
        doc = {"plan": dataclasses.asdict(plan), "sizes": [r.as_dict() for r in results],
               "growth": growth}  # fmt: skip
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    print_scale(results, growth, plan.controllers)
