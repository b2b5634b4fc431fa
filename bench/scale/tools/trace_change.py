"""Measurement script (not part of the product; run from a checkout with .venv/bin/python).
Trace member changes at N LBs: API return -> node applied_seq reported -> LB ACTIVE."""
import sys, time, tempfile, random, re, json
from pathlib import Path
from shoal.bench import scale
from shoal.bench.fleet import fleet
from shoal.lab.postgres import throwaway_postgres

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
K = int(sys.argv[2]) if len(sys.argv) > 2 else 10
def prog(w, f): print(f"\r{w}", end="", flush=True)
with tempfile.TemporaryDirectory(prefix="shoal-trace-") as tmp, throwaway_postgres("shoal_trace") as db, fleet(db, Path(tmp), 2) as fl, fl.admin() as c:
    t = time.perf_counter()
    refs = scale.populate(fl, N, 10, 4, prog)
    print(f"\ncreate {time.perf_counter()-t:.1f}s")
    scale.first_sync(fl, refs, prog, 600)
    print()
    ch = scale.Changer(c, refs); ch.refs = refs[:30]; ch.prepare(ch.refs)
    time.sleep(3)
    for i in range(K):
        ref = refs[i]
        seq0 = {n["name"]: n["applied_seq"] for n in c.get("/v2/shoal/nodes").json()["nodes"]}
        t0 = time.perf_counter(); wall0 = time.time()
        ret = ch.change(ref)
        tr = time.perf_counter()
        marks = {}
        while True:
            nodes = {n["name"]: n["applied_seq"] for n in c.get("/v2/shoal/nodes").json()["nodes"]}
            now = time.perf_counter()
            for k, v in nodes.items():
                if v != seq0[k] and k not in marks: marks[k] = now
            st = c.get(f"/v2/lbaas/loadbalancers/{ref.lb_id}").json()["loadbalancer"]["provisioning_status"]
            if st == "ACTIVE":
                marks["active"] = time.perf_counter(); break
            time.sleep(0.003)
        print(f"change {i}: call {1000*(tr-t0):.0f} ms; " + ", ".join(f"{k} +{1000*(v-tr):.0f}" for k, v in marks.items()), f"wall {wall0:.3f}")
        time.sleep(1.5)
    import subprocess
    for n in fl.nodes:
        lines = [l for l in n.log.read_text().splitlines() if "applied seq" in l][-3:]
        print("\n".join(lines))
    lines = [l for l in Path(fl.controller.log).read_text().splitlines() if ("PUT" in l or "feed" in l or "report" in l)]
    print("\n".join(lines[-24:]))
