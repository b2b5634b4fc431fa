"""Measurement script (not part of the product; run from a checkout with .venv/bin/python).
Draws the `shoal bench all` report's scale plots (shoal.bench.report) from a saved
`shoal bench scale --json` document: python plots.py RUN.json OUT_DIR"""

import json
import sys
from pathlib import Path

from shoal.bench.report import write_report

doc = json.loads(Path(sys.argv[1]).read_text())
latest = {
    "started": "saved run", "mode": "full", "repeats": 1, "metrics": {}, "machine": {}, "git": {},
    "benchmarks": {"scale": {"title": "scale", "status": "ok", "info": {"sizes": doc["sizes"]}}},
}
out = Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
for path in write_report(out, [latest], latest, []):
    print(path)
