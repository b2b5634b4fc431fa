"""In-process A/B of program variants and Maglev table sizes, plus Katran (the record of the
2026-12-04 ablations in docs/performance.md, kept as run; not part of Shoal).
usage: VARIANTS="name=OBJECT:TABLE_SIZE ..." python ablation_harness.py CALLS ROUNDS OUT.json
Katran's two objects are read from /tmp/katran-build/bpf (built as docs/performance.md says);
a variant named fixed* is loaded with fixed-size inner Maglev maps (no BPF_F_INNER_MAP)."""
import os, sys, json
from contextlib import ExitStack
from pathlib import Path
import numpy as np
from shoal.bench import dataplane as d
from shoal.dataplane import loader
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.config import parse_config
from shoal.lab.sandbox import sandbox

calls, rounds, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
paths = ["syn_flood", "new_flow_flood", "cache_miss_flood", "syn", "new_flow", "cache_miss", "cache_hit", "cache_hit_acl"]
KAT = [Path("/tmp/katran-build/bpf/balancer-ins.o"), Path("/tmp/katran-build/bpf/balancer-noins.o")]
BASE = loader.bpf_object_path("lb")
VARIANTS = [(v.split("=")[0], Path(v.split("=")[1].split(":")[0]), int(v.split(":")[1])) for v in os.environ["VARIANTS"].split()]
cpu = min(os.sched_getaffinity(0)); os.sched_setaffinity(0, {cpu})
distinct = calls + 1
sessions = max(4 * distinct, 1 << 20)
orig = loader.bpf_object_path

def cfg(flood, size):
    backends = [{"address": a} for a in list(d.SANDBOX_BACKENDS4)[:10]]
    fl = {"enter_rate": 1, "exit_rate": 0, "hold_down": 3600} if flood else {"enter_rate": 0, "exit_rate": 0}
    return parse_config({"settings": {"flood": fl}, "vips": [
        {"address": d.VIP, "port": 80, "protocol": "tcp", "backends": backends, "table_size": size},
        {"address": d.ACL_VIP, "port": 80, "protocol": "tcp", "backends": backends, "allowed_cidrs": d.ACL_PREFIXES, "table_size": size}]})

with sandbox("bench") as box, ExitStack() as st:
    ifx = box.ifindex
    triv = st.enter_context(loader.BpfObject(orig("trivial"), None))
    runners = {"floor": d._Runner(triv.prog_fd("shoal_trivial"), d._frames("not_vip", 1), ifx)}
    for name, obj, size in VARIANTS:
        loader.bpf_object_path = lambda n, o=obj: o if n == "lb" else orig(n)
        import shoal.dataplane.balancer as bm
        bm.loader.bpf_object_path = loader.bpf_object_path
        lbs = {}
        import shoal.dataplane.libbpf as lbpf
        lbpf.BPF_F_INNER_MAP = 0 if name.startswith("fixed") else 1 << 12
        for mode in ("normal", "flood"):
            lb = st.enter_context(Balancer.load(pin=False, session_cache_size=sessions))
            lb.apply(cfg(mode == "flood", size)); lbs[mode] = lb
        lbpf.BPF_F_INNER_MAP = 1 << 12
        for p in paths:
            n = distinct if p.startswith(("cache_miss", "new_flow")) else 1
            runners[f"{name}:{p}"] = d._Runner(lbs["flood" if d.PATHS[p][1] else "normal"].prog_fd, d._frames(p, n), ifx)
    loader.bpf_object_path = orig
    theirs = d._katran_runners(st, KAT, sessions, distinct, ifx)
    for p in paths:
        variant = d.KATRAN_VARIANTS[1 if d.PATHS[p][1] else 0]
        runners[f"katran:{p}"] = theirs[f"katran:{variant}:{d.PATHS[p][2]}"]
    for k, r in runners.items():
        if k.endswith((":cache_hit", ":cache_hit_acl")): r.sample(1)
    samples = {k: [] for k in runners}
    per = calls // rounds
    keys = list(runners)
    for rnd in range(rounds):
        order = keys if rnd % 2 == 0 else [keys[0]] + keys[:0:-1]
        for k in order:
            samples[k] += runners[k].sample(per)
        print(f"round {rnd+1}/{rounds}", file=sys.stderr, flush=True)
    floor = float(np.mean(samples["floor"]))
    names = [v[0] for v in VARIANTS] + ["katran"]
    res = {"floor": floor, "calls": calls, "rounds": rounds, "sessions": sessions, "variants": [(a, str(b), c) for a, b, c in VARIANTS], "rows": {}}
    for p in paths:
        row = {}
        for name in names:
            s = np.array(samples[f"{name}:{p}"]); m = float(s.mean()) - floor
            lo, hi = np.percentile(s, [1, 99]); tm = float(s[(s >= lo) & (s <= hi)].mean()) - floor
            row[name] = {"mean": round(m, 1), "trim": round(tm, 1), "actions": sorted(runners[f"{name}:{p}"].actions)}
        res["rows"][p] = row
        k = row["katran"]["mean"]
        print(f"{p:17} " + "  ".join(f"{n} {row[n]['mean']:5.0f} ({row[n]['mean']/k:.2f})" for n in names[:-1]) + f"  katran {k:5.0f}  {set(a for n in names for a in row[n]['actions'])}")
    print("floor", round(floor, 1))
    json.dump(res, open(out, "w"), indent=1)
