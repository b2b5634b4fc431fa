"""Measurement script (not part of the product; run from a checkout with .venv/bin/python).
Per-create server time from a controller log: the four calls of each LB, by position."""
import re, sys, statistics
f = sys.argv[1]; step = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
pat = re.compile(r'^(\S+ \S+) INFO shoal.controller.requests \S+ \S+ (POST|PUT) (/v2/lbaas/(loadbalancers|listeners|pools)|/v2/lbaas/pools/\S+/members) (\d+) ([\d.]+)ms')
calls = {"loadbalancers": [], "listeners": [], "pools": [], "members": []}
for line in open(f, errors="replace"):
    m = pat.match(line)
    if not m: continue
    path = m.group(3)
    kind = "members" if path.endswith("/members") else m.group(4)
    if m.group(2) == "PUT" and kind != "members": continue
    calls[kind].append(float(m.group(6)))
n = len(calls["loadbalancers"])
print(f"{n} creates")
for lo in range(0, n, step):
    hi = min(n, lo + step)
    tot = [sum(calls[k][i] for k in calls if i < len(calls[k])) for i in range(lo, hi)]
    per = {k: statistics.median(calls[k][lo:hi]) for k in calls if len(calls[k]) >= hi}
    print(f"  LBs {lo:>5}-{hi:<5}: 4 calls median {statistics.median(tot):6.1f} ms server time; " + ", ".join(f"{k} {v:.1f}" for k, v in per.items()))
