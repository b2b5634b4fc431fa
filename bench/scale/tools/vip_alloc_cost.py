"""Measurement script (not part of the product; run from a checkout with .venv/bin/python).
_lowest_free at N taken VIPs: the old whole scan against the free_from start (SQLite file)."""
import ipaddress, sys, tempfile, time
from sqlalchemy import create_engine, select, insert
from sqlalchemy.orm import Session
from shoal.controller.db.models import Base, LoadBalancer, VipPool
from shoal.controller.services import vips

def old(session, pool):
    used = set(session.scalars(select(LoadBalancer.vip_address)))
    for host in vips.network_of(pool).hosts():
        if str(host) not in used:
            return str(host)

for n in (100, 10_000):
    with tempfile.TemporaryDirectory() as tmp:
        eng = create_engine(f"sqlite:///{tmp}/v.db")
        Base.metadata.create_all(eng)
        with Session(eng) as s:
            pool = VipPool(name="p", network_id="x", cidr="10.96.0.0/16", ip_version=4)
            s.add(pool); s.flush()
            hosts = ipaddress.ip_network("10.96.0.0/16").hosts()
            s.execute(insert(LoadBalancer), [{"project_id": "p", "vip_address": str(next(hosts)), "vip_subnet_id": pool.id, "vip_network_id": "x"} for _ in range(n)])
            pool.free_from = n + 1
            s.flush()
            for name, fn in (("whole scan", old), ("free_from", vips._lowest_free)):
                ts = []
                for _ in range(21):
                    if fn is vips._lowest_free: pool.free_from = n + 1
                    s.flush(); t = time.perf_counter()
                    got = fn(s, pool)
                    ts.append(time.perf_counter() - t)
                print(f"N={n}: {name}: median {sorted(ts)[10]*1000:.2f} ms -> {got}")
