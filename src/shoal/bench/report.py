"""`--report DIR`: an HTML page with the latest results, the gate's verdicts, one plot per
metric across the history, and the e2e run's spread of packets over the backends.

matplotlib is optional: it is imported only here, and only when a report is asked for."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from shoal.bench.gate import Verdict
from shoal.errors import ShoalError

__all__ = ["write_report"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ShoalError(
            "the HTML report needs matplotlib: install it with `.venv/bin/pip install matplotlib`"
        ) from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _metric_plot(
    plt: Any, name: str, runs: list[dict[str, Any]], verdict: Verdict | None, out: Path
) -> None:
    points = [(i, r["metrics"][name]) for i, r in enumerate(runs) if name in r["metrics"]]
    spec = points[-1][1]
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    xs = [i for i, _ in points]
    ax.plot(xs, [m["value"] for _, m in points], marker="o", color="tab:blue", label="median")
    for k, (i, m) in enumerate(points):  # every repeat, faint: the spread behind each median
        samples = m.get("samples", [])
        label = "repeats" if k == 0 else None
        ax.scatter([i] * len(samples), samples, s=8, color="tab:blue", alpha=0.3, label=label)
    if verdict is not None and verdict.baseline is not None:
        base, tol = verdict.baseline, verdict.tolerance
        ax.axhline(base, color="tab:green", linestyle="--", linewidth=1, label="baseline")
        if spec.get("gate", True):
            worse = base * (1 + tol) if spec["direction"] == "lower" else base * (1 - tol)
            ax.axhline(
                worse, color="tab:red", linestyle=":", linewidth=1, label=f"gate ({tol:.0%})"
            )
    better = "lower" if spec["direction"] == "lower" else "higher"
    gated = "" if spec.get("gate", True) else ", info: not gated"
    ax.set_title(f"{name} ({better} is better{gated})", fontsize=10)
    ax.set_xlabel("run (history, oldest first)")
    unit = spec.get("unit", "")
    ax.set_ylabel("ratio (same-run yardstick = 1)" if unit == "x" else unit)
    ax.set_xticks(xs if len(xs) <= 12 else xs[:: max(1, len(xs) // 12)])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def _distribution_plot(plt: Any, by_backend: dict[str, int], out: Path) -> None:
    names = list(by_backend)
    total = sum(by_backend.values()) or 1
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    bars = ax.bar(names, [by_backend[n] / 1e6 for n in names], color="tab:purple")
    for bar, n in zip(bars, names, strict=True):
        top = (bar.get_x() + bar.get_width() / 2, bar.get_height())
        ax.annotate(f"{by_backend[n] / total:.1%}", top, ha="center", va="bottom", fontsize=8)
    ax.axhline(
        total / len(names) / 1e6, color="gray", linestyle="--", linewidth=1, label="even share"
    )
    ax.set_ylim(0, max(by_backend.values()) / 1e6 * 1.25)  # room for the labels and legend
    ax.set_title("e2e: packets delivered per backend (load-balancer rounds)", fontsize=10)
    ax.set_ylabel("million packets")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


SCALE_FIGURES = {  # SizeResult field -> (title, unit)
    "apply_p50_ms": ("member change -> applied on every L4 node, p50", "ms"),
    "apply_p99_ms": ("member change -> applied on every L4 node, p99", "ms"),
    "agent_cpu_ms_per_change": ("L4 agent CPU per change", "ms"),
    "controller_cpu_ms_per_change": ("controller CPU per change", "ms"),
    "bytes_per_change": ("bytes per change per agent", "bytes"),
    "map_bytes_per_node": ("BPF map memory per L4 node", "bytes"),
    "first_sync_s": ("first full sync", "s"),
}


def _scale_plots(plt: Any, sizes: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One plot per figure of `bench scale` against the number of load balancers, log-log:
    a flat line costs what it changes, a slope of 1 costs what the region holds."""
    written = []
    ns = [s["load_balancers"] for s in sizes]
    for key, (title, unit) in SCALE_FIGURES.items():
        values = [s[key] for s in sizes]
        fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
        ax.plot(ns, values, marker="o", color="tab:orange")
        for n, v in zip(ns, values, strict=True):
            ax.annotate(_fmt(v), (n, v), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=8)  # fmt: skip
        ax.set_xscale("log")
        if all(v > 0 for v in values):
            ax.set_yscale("log")
        ax.set_title(f"scale: {title}", fontsize=10)
        ax.set_xlabel("L4 load balancers (10 members each)")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3, which="both")
        fig.tight_layout()
        png = out_dir / f"scale_{key}.png"
        fig.savefig(png)
        plt.close(fig)
        written.append(png)
    return written


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}g}" if abs(v) >= 100 else f"{v:.{digits}f}"


def _table(latest: dict[str, Any], verdicts: list[Verdict]) -> str:
    rows = []
    for v in verdicts:
        m = latest["metrics"].get(v.metric, {})
        change = "-" if v.change_pct is None else f"{v.change_pct:+.1f}%"
        rows.append(
            f"<tr class='{v.kind.name}'><td><code>{html.escape(v.metric)}</code></td>"
            f"<td>{html.escape(m.get('description', ''))}</td><td>{v.direction}</td>"
            f"<td>{_fmt(v.baseline)}</td><td>{_fmt(v.now)}</td><td>{change}</td>"
            f"<td>{v.kind.value}</td></tr>"
        )
    head = "<tr><th>metric</th><th>what</th><th>better</th><th>baseline</th><th>now</th>"
    return f"<table>{head}<th>change</th><th>verdict</th></tr>{''.join(rows)}</table>"


def _statuses(latest: dict[str, Any]) -> str:
    items = []
    for name, st in latest["benchmarks"].items():
        note = f": {html.escape(st['note'])}" if st.get("note") else ""
        items.append(
            f"<li><b>{html.escape(name)}</b> ({html.escape(st['title'])}): "
            f"{html.escape(st['status'])}{note}, {st.get('seconds', 0)} s</li>"
        )
    return "<ul>" + "".join(items) + "</ul>"


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:3px 6px}
tr.regressed{background:#fdd}tr.better{background:#dfd}tr.missing{background:#ffd}
tr.info{color:#666}.plots img{margin:4px;border:1px solid #eee}"""


def write_report(
    out_dir: Path, history: list[dict[str, Any]], latest: dict[str, Any], verdicts: list[Verdict]
) -> list[Path]:
    """Writes index.html and the PNGs into out_dir; returns the files written. The history
    plotted is the runs of the latest run's mode (quick and full sizes differ)."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [r for r in history if r.get("mode") == latest.get("mode")] or [latest]
    by_name = {v.metric: v for v in verdicts}
    written: list[Path] = []
    images = []
    for name in sorted(latest["metrics"]):
        png = out_dir / f"{_slug(name)}.png"
        _metric_plot(plt, name, runs, by_name.get(name), png)
        written.append(png)
        images.append(png.name)
    spread = latest["benchmarks"].get("e2e", {}).get("info", {}).get("by_backend")
    if spread:
        png = out_dir / "e2e_backends.png"
        _distribution_plot(plt, spread, png)
        written.append(png)
        images.insert(0, png.name)
    sizes = latest["benchmarks"].get("scale", {}).get("info", {}).get("sizes")
    if sizes:
        pngs = _scale_plots(plt, sizes, out_dir)
        written += pngs
        images[:0] = [p.name for p in pngs]
    machine = latest["machine"]
    git = latest.get("git") or {}
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>shoal bench</title>
<style>{STYLE}</style></head><body>
<h1>shoal bench all — {html.escape(latest["started"])}</h1>
<p>{html.escape(str(machine.get("cpu_model")))}, {machine.get("cores")} cores,
{machine.get("memory_gb")} GB, kernel {html.escape(str(machine.get("kernel")))};
commit <code>{html.escape(str(git.get("commit")))}</code>; mode {latest["mode"]},
median of {latest["repeats"]} repeats; {len(runs)} run(s) of this mode in the history.</p>
<p>Every gated metric is a ratio against a floor measured in the same run. Absolute rates
(Mpps) are information only: veth in namespaces is not a NIC.</p>
<h2>Benchmarks</h2>{_statuses(latest)}
<h2>Latest run against the baseline</h2>{_table(latest, verdicts)}
<h2>Plots</h2><div class="plots">{"".join(f'<img src="{i}" alt="{i}">' for i in images)}</div>
</body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page)
    return [index, *written]
