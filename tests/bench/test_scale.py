"""`shoal bench scale`: the parts that decide its figures (bytes counted on the wire, growth
ratios, what the gate sees, plots against size) run unprivileged; one small run of the whole
thing (controller, PostgreSQL, two agents with XDP) is behind the `scale` marker
(`make test-scale`)."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

from shoal.bench import harness, scale, suites
from shoal.bench.registry import BenchContext, Benchmark
from shoal.bench.relay import Relay
from shoal.errors import ShoalError


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data * 3)  # three bytes back per byte in

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t


def test_relay_counts_each_direction_and_forwards_unchanged() -> None:
    srv, t = _echo_server()
    relay = Relay(("127.0.0.1", srv.getsockname()[1]))
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as c:
            c.sendall(b"x" * 1000)
            c.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := c.recv(65536):
                got += chunk
        assert got == b"x" * 3000
        t.join(5)
        down, up = relay.counts()
        assert (down, up) == (3000, 1000)
    finally:
        relay.close()
        srv.close()


def _result(n: int, **kw: float) -> scale.SizeResult:
    base = dict(
        load_balancers=n, members=10, create_s=1.0, api_calls=4 * n, first_sync_s=1.0,
        changes=10, apply_p50_ms=100.0, apply_p99_ms=200.0, agent_cpu_ms_per_change=5.0,
        controller_cpu_ms_per_change=10.0, bytes_per_change=1000.0,
        map_bytes_per_node=100_000_000,
    )  # fmt: skip
    return scale.SizeResult(**{**base, **kw})  # type: ignore[arg-type]


def test_growth_is_largest_over_smallest_whatever_the_order() -> None:
    big = _result(1000, bytes_per_change=10_000.0, agent_cpu_ms_per_change=50.0)
    big.churn = {"lag_p99_ms": 400.0}
    small = _result(100)
    small.churn = {"lag_p99_ms": 100.0}
    g = scale.growth([big, small])
    assert g["bytes_per_change"] == 10.0 and g["agent_cpu_per_change"] == 10.0
    assert g["apply_p99"] == 1.0 and g["churn_lag_p99"] == 4.0
    assert math.isnan(scale.growth([_result(1, first_sync_s=0.0), _result(2)])["first_sync"])


def test_the_suite_gates_bytes_and_agent_cpu_growth_and_plots_each_size(monkeypatch) -> None:
    monkeypatch.setattr(
        scale, "run", lambda plan, progress: [_result(n) for n in sorted(plan.sizes)]
    )
    out = suites.run_scale(BenchContext(True, lambda what, fraction: None))
    by_name = {m.name: m for m in out.metrics}
    gated = {m.name for m in out.metrics if m.gate}
    assert gated == {"scale.bytes_per_change.growth", "scale.agent_cpu_per_change.growth"}
    assert by_name["scale.bytes_per_change.growth"].value == 1.0
    small, large = sorted(scale.QUICK.sizes)
    assert f"scale.apply_p99.n{large}" in by_name and f"scale.first_sync.n{small}" in by_name
    assert [s["load_balancers"] for s in out.info["sizes"]] == [small, large]


def test_the_scale_suite_runs_once_per_bench_all_run() -> None:
    calls = []

    def run(ctx: BenchContext) -> suites.Outcome:
        calls.append(ctx)
        return suites.Outcome([], {})

    bench = Benchmark("once", "once", run, max_repeats=1)
    doc = harness.run_all([bench], quick=True, repeats=3)
    assert len(calls) == 1 and doc["benchmarks"]["once"]["status"] == "ok"
    builtin = {b.name: b for b in suites.BUILTIN}
    assert builtin["scale"].max_repeats == 1 and builtin["scale"].needs_root


def test_the_report_plots_every_figure_against_size(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from shoal.bench.report import SCALE_FIGURES, write_report

    sizes = [_result(n, bytes_per_change=n * 10.0).as_dict() for n in (100, 1000, 10_000)]
    latest = {
        "started": "now", "mode": "full", "repeats": 1, "metrics": {},
        "machine": {"cores": 2}, "git": {},
        "benchmarks": {"scale": {"title": "t", "status": "ok", "info": {"sizes": sizes}}},
    }  # fmt: skip
    written = write_report(tmp_path, [latest], latest, [])
    names = {p.name for p in written}
    assert {f"scale_{k}.png" for k in SCALE_FIGURES} <= names
    assert "scale_bytes_per_change.png" in (tmp_path / "index.html").read_text()


def test_cli_refuses_bad_sizes() -> None:
    import typer

    from shoal.cli.bench import _sizes_option

    assert _sizes_option("1000,100,100") == (100, 1000)
    for bad in ("", "a,b", "0,10"):
        with pytest.raises(typer.BadParameter):
            _sizes_option(bad)


def test_json_runs_show_progress_on_stderr_only(capsys, monkeypatch) -> None:
    from shoal.cli import bench

    clock = iter([100.0, 101.0, 111.0])
    monkeypatch.setattr(bench.time, "monotonic", lambda: next(clock))
    with bench._progress("starting", quiet=True) as report:
        report("creating load balancers (20/10000)", 0.002)
        report("creating load balancers (40/10000)", 0.004)  # within 10 s: not shown
        report("creating load balancers (60/10000)", 0.006)
    out = capsys.readouterr()
    assert out.out == ""  # stdout is the JSON document's
    lines = out.err.splitlines()
    assert len(lines) == 2 and "(20/10000)" in lines[0] and "(60/10000)" in lines[1]


@pytest.mark.scale
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (XDP, namespaces, PostgreSQL)")
@pytest.mark.skipif(shutil.which("runuser") is None, reason="needs runuser")
def test_a_small_run_measures_every_figure() -> None:
    """The whole harness on 3 and 12 load balancers: every figure present and sane, the
    whole-state or incremental feed alike (only the API, /proc and the wire are read)."""
    plan = dataclasses.replace(
        scale.QUICK, sizes=(3, 12), changes=4, churn_rate=4.0, churn_seconds=3.0
    )
    results = scale.run(plan, lambda what, fraction: None)
    assert [r.load_balancers for r in results] == [3, 12]
    for r in results:
        assert r.changes == 4 and 0 < r.apply_p50_ms <= r.apply_p99_ms < 120_000
        assert r.bytes_per_change > 0 and r.map_bytes_per_node > 1 << 20
        assert r.first_sync_s > 0 and len(r.nodes) == 3
    churned = results[-1].churn
    assert churned is not None and churned["drained"] and churned["still_pending"] == 0
    # 12 due; on a loaded machine the writer skips what is more than a second late.
    assert churned["changes"] + churned["writer_missed"] >= 12 - churned["conflicts_409"]
    assert churned["changes"] >= 3
    assert results[0].churn is None


def test_a_listing_begun_before_a_write_returned_never_marks_it_applied() -> None:
    """The listing may predate the write's commit: the change would look applied while it is
    still pending, its lag would read low and the next pick would hit a 409."""
    watch = scale.PendingWatch(None, interval=3600)  # type: ignore[arg-type]  # never polls
    try:
        watch.track("lb-a", returned=10.0)
        watch.track("lb-b", returned=20.0)
        watch.mark_applied(set(), began=15.0, now=16.0)  # began after a's write, before b's
        assert watch.pending() == {"lb-b"}
        assert watch.lags == [("lb-a", 10.0, 16.0)]
        watch.mark_applied({"lb-b"}, began=21.0, now=22.0)  # b still pending: stays
        assert watch.pending() == {"lb-b"}
        watch.mark_applied(set(), began=23.0, now=24.0)
        assert watch.pending() == set() and watch.lags[-1] == ("lb-b", 20.0, 24.0)
        assert watch.wait("lb-b", timeout=0) == pytest.approx(4000.0)
    finally:
        watch.close()


class _Proc:
    """A process whose CPU time grows by `busy[i]` in window i (then by the last value)."""

    def __init__(self, busy: list[float], clock: list[float]) -> None:
        self.busy, self.clock, self.used = busy, clock, 0.0

    def cpu(self) -> float:
        return self.used


def _fleet(agents: list[_Proc], controller: _Proc) -> object:
    """What settle() reads of a fleet: its agents and the controllers' CPU time."""
    return dataclasses.make_dataclass("Fl", ["nodes", "controller_cpu"])(agents, controller.cpu)


def test_settle_waits_for_two_quiet_windows_of_every_process_and_gives_up_when_busy() -> None:
    clock = [0.0]
    agents = [_Proc([0.9, 0.5, 0.1, 0.1], clock), _Proc([0.1, 0.1, 0.3, 0.0, 0.0], clock)]
    controller = _Proc([0.6, 0.0], clock)
    procs = [*agents, controller]
    windows = [0]

    def sleep(seconds: float) -> None:
        i = windows[0]
        for p in procs:
            p.used += p.busy[min(i, len(p.busy) - 1)]
        windows[0] += 1
        clock[0] += seconds

    fl = _fleet(agents, controller)
    took = scale.settle(fl, lambda w, f: None, 60, sleep=sleep, clock=lambda: clock[0])
    # Windows 0-2 each have a process at 0.15 s/s or more; 3 and 4 are quiet for all.
    assert windows[0] == 5 and took == 5.0
    stuck = _Proc([0.2], clock)  # an agent that never comes below 0.15 s/s
    procs.append(stuck)
    busy = _fleet([stuck], controller)
    with pytest.raises(ShoalError, match="still busy"):
        scale.settle(busy, lambda w, f: None, 10, sleep=sleep, clock=lambda: clock[0])
