"""Measurement script (not part of the product; run from a checkout with .venv/bin/python):
what a delta report after one change costs the controller when the node already holds N load
balancers' digests and per-LB traffic, in process on a throwaway PostgreSQL: the POST's
wall time and the process's CPU time around it (medians of ROUNDS). Run it against two
source trees (PYTHONPATH=<tree>/src) to compare. Usage: node_report_rows_cost.py N [ROUNDS]"""

import json
import statistics
import sys
import tempfile
import time

from fastapi.testclient import TestClient

from shoal.controller.app import create_app
from shoal.controller.settings import load_settings
from shoal.lab.postgres import throwaway_postgres

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 12


def lb_id(i: int) -> str:
    return f"{i:08d}-0000-4000-8000-000000000000"


def post(c: TestClient, nid: str, h: dict[str, str], body: dict) -> tuple[float, float]:
    raw = json.dumps(body).encode()
    cpu, wall = time.process_time(), time.perf_counter()
    resp = c.post(
        f"/v2/shoal/nodes/{nid}/report",
        content=raw,
        headers=h | {"Content-Type": "application/json"},
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert resp.status_code == 204, resp.text
    return wall, cpu


with tempfile.TemporaryDirectory() as tmp, throwaway_postgres("shoal_reportrows") as url:
    app = create_app(
        load_settings(
            database_url=url,
            state_dir=tmp,
            bootstrap_token="adm",
            vip_pools=[{"name": "p", "cidr": "10.96.0.0/16"}],
        )
    )
    c = TestClient(app, base_url="https://t", headers={"X-Auth-Token": "adm"})
    enr = {"enrollment": {"name": "a", "role": "l4"}}
    cred = c.post("/v2/shoal/enrollments", json=enr).json()["enrollment"]["credential"]
    h = {"X-Auth-Token": cred}
    nid = c.post("/v2/shoal/nodes", json={"name": "a", "role": "l4"}, headers=h).json()["node"][
        "id"
    ]
    digests = {lb_id(i): {f"tcp://10.96.{i >> 8}.{i & 255}:80": "ab" * 16} for i in range(N)}
    per_lb = {k: {"bytes_in": 0, "packets_in": 0} for k in digests}
    small = {"dataplane": {"tx": 0}, "flood": {"active": False}}
    whole = {"seq": 0, "report": 1, "digests": digests, "counters": small | {"load_balancers": per_lb}}
    first = post(c, nid, h, whole)
    walls, cpus = [], []
    for r in range(ROUNDS):
        body = {
            "seq": 0,
            "report": r + 2,
            "base": r + 1,
            "digests": {lb_id(r): {"tcp://x:80": f"d{r}"}},
            "counters": small,
        }
        wall, cpu = post(c, nid, h, body)
        walls.append(wall)
        cpus.append(cpu)
    print(
        f"N={N}: whole report {first[0] * 1000:.0f} ms; delta POST wall "
        f"{statistics.median(walls) * 1000:.1f} ms (min {min(walls) * 1000:.1f}), CPU "
        f"{statistics.median(cpus) * 1000:.1f} ms (min {min(cpus) * 1000:.1f}), medians of {ROUNDS}"
    )
