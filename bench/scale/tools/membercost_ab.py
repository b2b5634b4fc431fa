"""Measurement script (not part of the product; run from a checkout with .venv/bin/python):
`shoal.bench.membercost` against two source trees, interleaved (A, B, A, B per size, so
the machine's load falls on both alike), each run in its own process with that tree's
code imported; then the plots of statements and controller CPU per change against N.

    membercost_ab.py BEFORE_SRC AFTER_SRC OUT.json FIG_DIR [SIZES] [ROUNDS] [PASSES]

Runs add up in OUT.json (more passes, same comparison); the plots take each size's
median over the passes. The membercost file itself is taken from this checkout for both (it uses only routes and
modules that exist in both trees)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TOOL = Path(__file__).resolve().parents[3] / "src" / "shoal" / "bench" / "membercost.py"
before, after, out, figs = sys.argv[1:5]
sizes = [int(s) for s in (sys.argv[5] if len(sys.argv) > 5 else "100,1000,10000").split(",")]
rounds = sys.argv[6] if len(sys.argv) > 6 else "21"
passes = int(sys.argv[7]) if len(sys.argv) > 7 else 1


def run(src: str, n: int) -> dict:
    env = os.environ | {"PYTHONPATH": src}
    cmd = [sys.executable, str(TOOL), str(n), "--rounds", rounds]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# Runs add up in OUT.json: a second invocation is more passes of the same comparison.
doc: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "runs": []}
if Path(out).exists():
    doc = json.loads(Path(out).read_text())
for _ in range(passes):
    for n in sizes:
        for label, src in (("before", before), ("after", after)):
            result = run(src, n) | {"tree": label, "loadavg": os.getloadavg()[0]}
            doc["runs"].append(result)
            print(json.dumps(result), flush=True)
doc["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
Path(out).write_text(json.dumps(doc, indent=1) + "\n")


def per_change(run: dict, key: str) -> float:
    """write + both nodes' feed answers and reports: what one change costs the controller."""
    return float(sum(run["steps"][s][key] for s in ("write", "feed", "report")))


Path(figs).mkdir(parents=True, exist_ok=True)
for key, label in (("statements", "SQL statements per change"), ("cpu_ms", "controller CPU ms per change")):
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for tree in ("before", "after"):
        rows = [r for r in doc["runs"] if r["tree"] == tree]
        xs = sorted({r["load_balancers"] for r in rows})
        ys = [median(per_change(r, key) for r in rows if r["load_balancers"] == x) for x in xs]
        ax.plot(xs, ys, marker="o", label=tree)
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("L4 load balancers (10 members each)")
    ax.set_ylabel(label)
    ax.set_title("member PUT + 2 nodes' feed and report (in process, PostgreSQL)", fontsize=8)
    ax.legend()
    fig.tight_layout()
    fig.savefig(Path(figs) / f"membercost_{key}.png", dpi=100)
    print(Path(figs) / f"membercost_{key}.png")
