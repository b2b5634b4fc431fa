"""Measurement script (not part of the product; run from a checkout with .venv/bin/python).
Controller cost per change with 2 L4 nodes whose last reports hold 10,000 load balancers'
digests and counters: a feed delta answer, a report, GET .../loadbalancers/{id}/nodes."""
import sys, time, tempfile, statistics
from fastapi.testclient import TestClient
from shoal.controller.app import create_app
from shoal.controller.settings import load_settings
from shoal.lab.postgres import throwaway_postgres
N = 10_000
with tempfile.TemporaryDirectory() as tmp, throwaway_postgres("shoal_nodecost") as url:
    app = create_app(load_settings(database_url=url, state_dir=tmp, bootstrap_token="adm", vip_pools=[{"name": "p", "cidr": "10.96.0.0/16"}]))
    c = TestClient(app, base_url="https://t", headers={"X-Auth-Token": "adm"})
    lb = c.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {"flavor_id": "l4"}}).json()["loadbalancer"]
    nodes = []
    for name in ("a", "b"):
        cred = c.post("/v2/shoal/enrollments", json={"enrollment": {"name": name, "role": "l4"}}).json()["enrollment"]["credential"]
        h = {"X-Auth-Token": cred}
        nid = c.post("/v2/shoal/nodes", json={"name": name, "role": "l4"}, headers=h).json()["node"]["id"]
        nodes.append((nid, h))
    digests = {f"{i:08d}-0000-4000-8000-000000000000": {f"tcp://10.96.{i>>8}.{i&255}:80": "ab" * 16} for i in range(N)}
    digests[lb["id"]] = {"tcp://x:80": "d"}
    counters = {"load_balancers": {k: {"bytes_in": 0, "packets_in": 0} for k in digests}, "dataplane": {}, "flood": {}}
    body = {"seq": 0, "digests": digests, "counters": counters}
    rep, feedt, lbn = [], [], []
    for i in range(8):
        r = c.put(f"/v2/lbaas/loadbalancers/{lb['id']}", json={"loadbalancer": {"name": f"n{i}"}})
        for nid, h in nodes:
            pos = c.get(f"/v2/shoal/nodes/{nid}/feed", params={"position": 0}, headers=h).json()["seq"]
            t = time.perf_counter(); c.get(f"/v2/shoal/nodes/{nid}/feed", params={"position": pos - 1}, headers=h); feedt.append(time.perf_counter() - t)
            body["seq"] = pos
            t = time.perf_counter(); r = c.post(f"/v2/shoal/nodes/{nid}/report", json=body, headers=h); rep.append(time.perf_counter() - t); assert r.status_code == 204, r.text
        t = time.perf_counter(); v = c.get(f"/v2/shoal/loadbalancers/{lb['id']}/nodes").json(); lbn.append(time.perf_counter() - t)
    assert v["nodes"][0]["table_digests"] == {"tcp://x:80": "d"}, v
    m = lambda xs: statistics.median(xs) * 1000
    print(f"{sys.argv[1]}: feed delta {m(feedt):.1f} ms, report {m(rep):.1f} ms, lb nodes {m(lbn):.1f} ms (medians, {N} LBs in each node's report)")
