"""Measurement script (not part of the product; run from a checkout with .venv/bin/python):
one report after one change, whole (what agents sent before delta reports: every load
balancer's digests and traffic) against a delta (that load balancer only, no per-LB traffic),
in the same run. Controller: the POST in process (PostgreSQL); agent: building the tables part
(ReportTracker.body) and serialising the body. Usage: node_report_delta_cost.py N"""

import json
import statistics
import sys
import tempfile
import time

from fastapi.testclient import TestClient

from shoal.agents.report_delta import ReportTracker
from shoal.controller.app import create_app
from shoal.controller.settings import load_settings
from shoal.lab.postgres import throwaway_postgres

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 8


def lb_id(i: int) -> str:
    return f"{i:08d}-0000-4000-8000-000000000000"


with tempfile.TemporaryDirectory() as tmp, throwaway_postgres("shoal_reportdelta") as url:
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
    tracker = ReportTracker()
    results: dict[str, list[float]] = {"whole": [], "delta": []}
    agent: dict[str, list[float]] = {"whole": [], "delta": []}
    size: dict[str, int] = {}
    for r in range(ROUNDS):
        for kind in ("whole", "delta"):
            if kind == "whole":
                tracker.reset()
            digests = dict(digests)
            digests[lb_id(r)] = {"tcp://x:80": f"{kind}{r}"}  # one load balancer changed
            t = time.process_time()
            tables = tracker.body(digests, [])
            body = {
                "seq": 0,
                "errors": tables.errors,
                "digests": tables.digests,
                "counters": small | ({"load_balancers": per_lb} if kind == "whole" else {}),
                **tables.fields(),
            }
            raw = json.dumps(body).encode()
            agent[kind].append(time.process_time() - t)
            size[kind] = len(raw)
            t = time.perf_counter()
            resp = c.post(
                f"/v2/shoal/nodes/{nid}/report",
                content=raw,
                headers=h | {"Content-Type": "application/json"},
            )
            results[kind].append(time.perf_counter() - t)
            assert resp.status_code == 204, resp.text
            tracker.acknowledged(tables)
    med = {k: statistics.median(v) * 1000 for k, v in results.items()}
    amed = {k: statistics.median(v) * 1000 for k, v in agent.items()}
    print(
        f"N={N}: bytes whole {size['whole']} delta {size['delta']} "
        f"({size['whole'] / size['delta']:.0f}x); controller POST whole {med['whole']:.1f} ms "
        f"delta {med['delta']:.1f} ms ({med['whole'] / med['delta']:.1f}x); agent build+json "
        f"whole {amed['whole']:.1f} ms delta {amed['delta']:.1f} ms "
        f"({amed['whole'] / max(amed['delta'], 0.001):.1f}x) (medians of {ROUNDS})"
    )
