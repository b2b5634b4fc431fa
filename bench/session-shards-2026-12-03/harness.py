# The harness behind docs/performance.md "The session table in the kernel's direct map" (stop 28).
"""In-process A/B: flat vs sharded session table, plus Katran, incl. cold cache hits.
usage: ab2.py CALLS ROUNDS OUT.json"""
import os, sys, json
from contextlib import ExitStack
from pathlib import Path
import numpy as np
from shoal.bench import dataplane as d
from shoal.dataplane import loader
from shoal.dataplane.balancer import Balancer
import shoal.dataplane.balancer as balmod
from shoal.lab.sandbox import sandbox

calls, rounds, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
paths = ["syn_flood", "new_flow_flood", "cache_miss_flood", "cache_miss", "new_flow", "cache_hit", "syn", "cache_hit_cold"]
KAT = [Path("/tmp/katran-build/bpf/balancer-ins.o"), Path("/tmp/katran-build/bpf/balancer-noins.o")]
cpu = min(os.sched_getaffinity(0)); os.sched_setaffinity(0, {cpu})
distinct = calls + 1
sessions = max(4 * distinct, 1 << 20)
with sandbox("bench") as box, ExitStack() as st:
    ifx = box.ifindex
    triv = st.enter_context(loader.BpfObject(loader.bpf_object_path("trivial"), None))
    runners = {"floor": d._Runner(triv.prog_fd("shoal_trivial"), d._frames("not_vip", 1), ifx)}
    for name, sharded in (("flat", False), ("sharded", True)):
        balmod.sharded_layout = lambda s=sharded: s
        lbs = {}
        for mode in ("normal", "flood", "cold"):
            lb = st.enter_context(Balancer.load(pin=False, session_cache_size=sessions))
            lb.apply(d._lb_config(flood=mode == "flood")); lbs[mode] = lb
        for p in paths:
            if p == "cache_hit_cold":
                r = d._Runner(lbs["cold"].prog_fd, d._frames("cache_miss", distinct), ifx)
                r.sample(distinct)  # every flow now has its entry
            else:
                n = distinct if p.startswith(("cache_miss", "new_flow")) else 1
                r = d._Runner(lbs["flood" if d.PATHS[p][1] else "normal"].prog_fd, d._frames(p, n), ifx)
            runners[f"{name}:{p}"] = r
    theirs = d._katran_runners(st, KAT, sessions, distinct, ifx)
    for p in paths:
        if p == "cache_hit_cold":
            continue
        variant = d.KATRAN_VARIANTS[1 if d.PATHS[p][1] else 0]
        runners[f"katran:{p}"] = theirs[f"katran:{variant}:{d.PATHS[p][2]}"]
    # Katran's cold hits: its own cache_miss frames, inserted by one pass of a second runner
    lbk = st.enter_context(d.KatranBalancer(KAT[0], d.VIP, 80, list(d.SANDBOX_BACKENDS4)[:10], d.SANDBOX_BACKENDS4[list(d.SANDBOX_BACKENDS4)[0]], sessions))
    rk = d._Runner(lbk.prog_fd, d._frames("cache_miss", distinct), ifx); rk.sample(distinct)
    runners["katran:cache_hit_cold"] = rk
    for k, r in runners.items():
        if k.endswith(":cache_hit"): r.sample(1)
    samples = {k: [] for k in runners}
    per = calls // rounds
    keys = list(runners)
    for rnd in range(rounds):
        order = keys if rnd % 2 == 0 else [keys[0]] + keys[:0:-1]
        for k in order:
            samples[k] += runners[k].sample(per)
        print(f"round {rnd+1}/{rounds}", file=sys.stderr, flush=True)
    floor = float(np.mean(samples["floor"]))
    res = {"floor": floor, "calls": calls, "rounds": rounds, "sessions": sessions, "rows": {}}
    for p in paths:
        row = {}
        for name in ("flat", "sharded", "katran"):
            s = np.array(samples[f"{name}:{p}"]); m = float(s.mean()) - floor
            lo, hi = np.percentile(s, [1, 99]); tm = float(s[(s >= lo) & (s <= hi)].mean()) - floor
            row[name] = {"mean": round(m, 1), "trim": round(tm, 1), "actions": sorted(runners[f"{name}:{p}"].actions)}
        res["rows"][p] = row
        k = row["katran"]["mean"]
        print(f"{p:18} flat {row['flat']['mean']:6.0f} ({row['flat']['mean']/k:.2f})  sharded {row['sharded']['mean']:6.0f} ({row['sharded']['mean']/k:.2f})  katran {k:6.0f}  actions {[row[n]['actions'] for n in row]}")
    print("floor", round(floor, 1))
    json.dump(res, open(out, "w"), indent=1)
