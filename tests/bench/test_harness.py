"""`shoal bench all`: the regression gate, the harness and its registry, the live-frames
generator between two namespaces, and a tiny end-to-end run down to the HTML report.

Nothing here asserts on speed: only on verdicts, structure, counters and bounds."""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from shoal import netns
from shoal.bench import gate, harness, machine, registry
from shoal.bench.registry import BenchContext, Benchmark, Direction, Metric, NotAvailable, Outcome
from shoal.dataplane import packets
from shoal.errors import DataplaneError

from ..kernelcaps import skip_if_refused

LOWER, HIGHER = Direction.LOWER, Direction.HIGHER


def doc(name: str, value: float, direction: Direction = LOWER, **extra: object) -> dict:
    return {name: {"value": value, "direction": direction.value, **extra}}


# ---- the gate ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "now", "kind"),
    [
        (LOWER, 1.14, gate.VerdictKind.ok),
        (LOWER, 1.16, gate.VerdictKind.regressed),
        (LOWER, 0.80, gate.VerdictKind.better),
        (HIGHER, 0.86, gate.VerdictKind.ok),
        (HIGHER, 0.84, gate.VerdictKind.regressed),
        (HIGHER, 1.20, gate.VerdictKind.better),
    ],
)
def test_gate_judges_in_the_metrics_direction(direction, now, kind):
    (v,) = gate.compare(doc("m", now, direction), doc("m", 1.0))
    assert v.kind is kind
    assert v.change_pct == pytest.approx((now - 1.0) * 100)
    assert gate.failed([v]) is (kind is gate.VerdictKind.regressed)


def test_gate_per_metric_tolerance_and_info_metrics():
    widened = doc("wide", 1.3, tolerance=0.4)
    info = doc("info", 9.0, gate=False)
    verdicts = gate.compare({**widened, **info}, {**doc("wide", 1.0), **doc("info", 1.0)})
    assert [v.kind for v in verdicts] == [gate.VerdictKind.info, gate.VerdictKind.ok]
    assert not gate.failed(verdicts)


def test_gate_missing_and_new_metrics_do_not_fail():
    verdicts = gate.compare(doc("new", 1.0), doc("gone", 1.0))
    kinds = {v.metric: v.kind for v in verdicts}
    assert kinds == {"gone": gate.VerdictKind.missing, "new": gate.VerdictKind.new}
    assert not gate.failed(verdicts)
    assert all(v.kind is gate.VerdictKind.new for v in gate.compare(doc("a", 1.0), None))


def test_baseline_update_keeps_the_other_mode_and_machine(tmp_path):
    path = tmp_path / "bench" / "baseline.json"
    here, there = {"cpu_model": "A", "cores": 2, "kernel": "6.1"}, {"cpu_model": "B", "cores": 2}
    here_key = machine.key(here)
    assert gate.load_baseline(path, "quick", here_key) == (None, "no quick baseline yet")
    quick = {"metrics": doc("m", 2.0, HIGHER, samples=[1, 2, 3], description="x"), "repeats": 3}
    gate.write_baseline(path, "quick", quick | {"machine": here, "git": {"commit": "c1"}})
    gate.write_baseline(path, "full", {"metrics": doc("m", 5.0), "machine": here})
    gate.write_baseline(path, "quick", {"metrics": doc("m", 9.0), "machine": there})
    stored, which = gate.load_baseline(path, "quick", here_key)
    assert stored == {"m": {"value": 2.0, "direction": "higher"}}  # samples etc. not kept
    assert here_key in which
    assert gate.load_baseline(path, "full", here_key)[0] == {
        "m": {"value": 5.0, "direction": "lower"}
    }
    # Another machine's figures never judge this one; the line says whose there are.
    none, which = gate.load_baseline(path, "quick", machine.key({"cpu_model": "C"}))
    assert none is None and here_key in which and machine.key(there) in which
    assert gate.reference_commit(path) == "c1"  # the last run that had a commit
    (v,) = gate.compare(quick["metrics"], stored)
    assert v.kind is gate.VerdictKind.ok and v.change_pct == 0


def test_a_first_schema_baseline_is_read_as_its_machines(tmp_path):
    path = tmp_path / "baseline.json"
    desc = {"cpu_model": "AMD EPYC", "cores": 2, "kernel": "6.18"}
    section = {"created": "t", "machine": desc, "metrics": doc("m", 1.0)}
    path.write_text(json.dumps({"schema": "shoal-bench-baseline/1", "modes": {"quick": section}}))
    assert gate.load_baseline(path, "quick", machine.key(desc))[0] == doc("m", 1.0)
    assert gate.load_baseline(path, "quick", machine.key({"cpu_model": "Intel"}))[0] is None
    assert gate.reference_commit(path) is None


# ---- the harness and the registry --------------------------------------------------------


def fake(name: str, values: list[float], fail: BaseException | None = None) -> Benchmark:
    it = iter(values)

    def run(ctx: BenchContext) -> Outcome:
        ctx.progress("working", 0.5)
        if fail is not None:
            raise fail
        return Outcome([Metric(f"{name}.m", next(it), HIGHER, "d")], {"quick": ctx.quick})

    return Benchmark(name, f"fake {name}", run)


def test_harness_medians_statuses_and_progress():
    steps: list[harness.Step] = []
    benches = [
        fake("a", [3.0, 1.0, 2.0]),
        fake("b", [], NotAvailable("not here")),
        fake("c", [], RuntimeError("boom")),
    ]
    result = harness.run_all(benches, quick=True, repeats=3, progress=steps.append)
    json.dumps(result)  # the history line must serialise
    m = result["metrics"]["a.m"]
    assert m["value"] == 2.0 and m["samples"] == [3.0, 1.0, 2.0]
    assert m["direction"] == "higher" and m["benchmark"] == "a"
    st = result["benchmarks"]
    assert st["a"]["status"] == "ok" and st["a"]["info"] == {"quick": True}
    assert (st["b"]["status"], st["b"]["note"]) == ("not available", "not here")
    assert st["c"]["status"] == "error" and "boom" in st["c"]["note"]
    assert result["mode"] == "quick" and result["machine"]["kernel"]
    assert {s.bench.name for s in steps} == {"a", "b", "c"}
    assert steps[0].left == ["b", "c"] and steps[0].total == 9
    assert any(s.what == "working" and s.fraction == 0.5 for s in steps)


def test_a_registered_benchmark_takes_the_builtins_place(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", {})
    names = [b.name for b in harness.benchmarks()]
    assert names == ["dataplane", "control", "e2e", "l7", "scale"]
    l7 = registry.register(fake("l7", [1.0]))
    registry.register(fake("extra", [1.0]))
    benches = harness.benchmarks()
    assert [b.name for b in benches] == [*names, "extra"]
    assert benches[3] is l7
    assert [b.name for b in harness.benchmarks(["l7"])] == ["l7"]
    with pytest.raises(ValueError, match="unknown benchmark"):
        harness.benchmarks(["nope"])


def test_history_round_trip_skips_garbage(tmp_path):
    path = tmp_path / "h" / "history.jsonl"
    harness.append_history(path, {"schema": harness.SCHEMA, "n": 1})
    with path.open("a") as f:
        f.write("not json\n")
    harness.append_history(path, {"schema": harness.SCHEMA, "n": 2})
    assert [r["n"] for r in harness.load_history(path)] == [1, 2]
    harness.append_history(path, {"schema": harness.SCHEMA, "n": 3, "machine": {"cpu_model": "X"}})
    assert [r["n"] for r in harness.load_history(path, {"cpu_model": "X"})] == [3]


def test_git_commit_read_from_files(tmp_path):
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "packed-refs").write_text("# pack-refs\n" + "a" * 40 + " refs/heads/main\n")
    assert machine.git_commit(tmp_path) == {"commit": "a" * 40, "ref": "refs/heads/main"}
    (git / "refs" / "heads" / "main").write_text("b" * 40 + "\n")
    assert machine.git_commit(tmp_path)["commit"] == "b" * 40
    (git / "HEAD").write_text("c" * 40 + "\n")
    assert machine.git_commit(tmp_path) == {"commit": "c" * 40, "ref": None}


# ---- the CLI -----------------------------------------------------------------------------


def cli() -> typer.Typer:
    from shoal.cli.benchall import all_command

    app = typer.Typer()
    app.command("all")(all_command)
    app.command("unused")(lambda: None)  # two commands: "all" stays a subcommand
    return app


def test_cli_gate_fails_on_a_regression_and_update_accepts_it(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", {})
    values = iter([0.8, 0.6])
    registry.register(
        Benchmark(
            "l7",
            "fake",
            lambda ctx: Outcome([Metric("l7.rps.x_floor", next(values), HIGHER, "d")]),
        )
    )
    args = ["all", "--quick", "--only", "l7", "--repeats", "1"]
    args += ["--baseline", str(tmp_path / "b.json"), "--history", str(tmp_path / "h.jsonl")]
    first = CliRunner().invoke(cli(), [*args, "--update-baseline"])
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(cli(), args)
    assert second.exit_code == 1
    assert "REGRESSED" in second.stdout and "-25.0" in second.stdout
    assert len(harness.load_history(tmp_path / "h.jsonl")) == 2


# ---- the live-frames generator (root: BPF, namespaces) -----------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    from shoal.lab.topology import Topology

    with Topology(f"shoal-tg{os.getpid()}") as topo:
        a, b = topo.ns("a"), topo.ns("b")
        topo.link(a, "g0", b, "g1")
        yield a, b


@pytest.fixture
def one_cpu() -> Iterator[None]:
    """The generator's flow counter is per CPU: test runs must not migrate."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    yield
    os.sched_setaffinity(0, before)


@pytest.mark.bpf
@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_generator_varies_flows_with_valid_checksums(protocol, one_cpu):
    from shoal.bench.trafgen import FlowPattern, Trafgen, min_frame
    from shoal.dataplane.testrun import XdpAction, run_xdp

    frame = min_frame(protocol, "10.99.0.1", 53)
    flows = FlowPattern(flows=5, port_span=2, saddr="10.98.0.250", sport_base=60000)
    with Trafgen() as tg:
        tg.pattern(flows)
        tg.set_frame(frame)
        outs = [run_xdp(tg.obj.prog_fd("shoal_trafgen"), frame) for _ in range(6)]
    seen = []
    for out in outs:
        assert out.action is XdpAction.TX and len(out.frame) == 60
        ip, l4 = out.frame[14:34], out.frame[34:]
        assert packets.checksum(ip) == 0
        src = ipaddress.IPv4Address(ip[12:16])
        pseudo = ip[12:20] + struct.pack("!BBH", 0, ip[9], len(l4))
        assert packets.checksum(pseudo + l4) == 0
        seen.append((str(src), struct.unpack("!H", l4[:2])[0]))
    assert seen == [flows.flow(i) for i in range(6)]  # flow 5 is flow 0 again
    assert seen[2] == ("10.98.0.251", 60000)


@pytest.mark.bpf
@pytest.mark.netns
def test_generator_delivers_between_namespaces_within_its_bounds(pair):
    from shoal.bench.trafgen import Trafgen, live_frames_refusal, min_frame

    skip_if_refused(live_frames_refusal())
    a, b = pair
    frame = min_frame("udp", "10.99.0.7", 53)
    with Trafgen() as tg:
        tg.attach_sink("g1", b)
        sent = tg.send(frame, "g0", a, packets=20_000, seconds=10)
        time.sleep(0.05)
        assert (sent.packets, sent.stopped_by) == (20_000, "packets")
        # Counted by destination; a busy machine may overflow a veth ring now and then.
        assert 19_000 <= tg.received_by_slot()[7] <= 20_000
        timed = tg.send(frame, "g0", a, packets=10**12, seconds=0.3)
        with pytest.raises(DataplaneError, match="inside a network namespace"):
            tg.send(frame, "g0", "", packets=1, seconds=1)
    # The time bound ended it, not the packet bound.
    assert timed.stopped_by == "seconds" and 0 < timed.packets < 10**12


def test_e2e_without_trafgen_says_so(monkeypatch):
    from shoal.bench import e2e, netsniff

    monkeypatch.setattr(netsniff, "binary", lambda: None)
    result = e2e._trafgen_rounds(None, e2e.QUICK, 0, lambda r: None, warm=True)  # type: ignore[arg-type]
    assert result.ratio is None and "netsniff-ng" in result.note


def test_e2e_without_either_generator_is_not_available(monkeypatch):
    from shoal.bench import e2e, netsniff

    monkeypatch.setattr(netsniff, "binary", lambda: None)
    monkeypatch.setattr(e2e, "live_frames_refusal", lambda: "this kernel refuses (EPERM)")
    with pytest.raises(NotAvailable, match=r"refuses \(EPERM\), and trafgen .*netsniff-ng"):
        e2e.run(e2e.QUICK)


# ---- a tiny real run down to the report (root: BPF, namespaces) --------------------------


@pytest.mark.bpf
@pytest.mark.netns
def test_tiny_e2e_run_gives_a_result_and_a_report(tmp_path):
    pytest.importorskip("matplotlib")
    from shoal.bench import report, suites
    from shoal.bench.e2e import E2ESizes
    from shoal.bench.trafgen import live_frames_refusal

    tiny = E2ESizes(rounds=1, seconds=0.1, packets=300_000, trafgen_frames=16)
    e2e = Benchmark("e2e", "tiny", functools.partial(suites.run_e2e, sizes=tiny), True)
    result = harness.run_all([e2e], quick=True, repeats=2)
    json.dumps(result)
    assert result["benchmarks"]["e2e"]["status"] == "ok", result["benchmarks"]["e2e"]
    info = result["benchmarks"]["e2e"]["info"]
    # A kernel that refuses live frames leaves trafgen's rounds alone, not gated (and says so).
    refusal = live_frames_refusal()
    key = "trafgen" if refusal else "live"
    if refusal:
        assert "e2e.live.lb_over_bounce" not in result["metrics"]
        assert info["live"]["note"] == f"skipped: {refusal}" and not info["live"]["ratios"]
    else:
        assert 0.9 * info["live"]["sent"] <= info["live"]["delivered"] <= info["live"]["sent"]
    ratio = result["metrics"][f"e2e.{key}.lb_over_bounce"]
    assert ratio["direction"] == "higher" and len(ratio["samples"]) == 2
    assert ratio["gate"] is (key == "live")
    assert 0 < ratio["value"] < 2
    assert set(info["by_backend"]) == {"10.96.0.11", "10.96.0.12", "10.96.0.13", "10.96.0.14"}
    assert all(n > 0 for n in info["by_backend"].values())  # 1024 flows reach every backend

    verdicts = gate.compare(result["metrics"], None)
    files = report.write_report(tmp_path / "report", [result, result], result, verdicts)
    names = {f.name for f in files}
    assert "index.html" in names and "e2e_backends.png" in names
    assert f"e2e.{key}.lb_over_bounce.png" in names
    for f in files:
        assert f.stat().st_size > 1000
    assert f"e2e.{key}.lb_over_bounce" in (tmp_path / "report" / "index.html").read_text()
    assert not any(p.name.startswith("shoal-e2e-") for p in netns.NETNS_DIR.glob("*"))


def test_control_through_the_cli_with_a_report(tmp_path):
    pytest.importorskip("matplotlib")
    args = ["all", "--quick", "--json", "--only", "control", "--repeats", "1"]
    args += ["--baseline", str(tmp_path / "b.json"), "--history", str(tmp_path / "h.jsonl")]
    args += ["--report", str(tmp_path / "r")]
    out = CliRunner().invoke(cli(), args)
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["schema"] == harness.SCHEMA and result["git"]["commit"]
    m = result["metrics"]["control.write_p50.x_health"]
    assert m["value"] > 0 and m["direction"] == "lower" and m["unit"] == "x"
    assert {v["kind"] for v in result["gate"]["verdicts"]} == {"new", "info"}  # p99: info
    pngs = list((tmp_path / "r").glob("*.png"))
    assert (tmp_path / "r" / "index.html").exists() and len(pngs) == 2
    assert Path(tmp_path / "h.jsonl").read_text().count("\n") == 1
