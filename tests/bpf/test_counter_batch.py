"""The batch reads a /metrics scrape makes of the kernel's per-CPU counter maps (one
bpf_map_lookup_batch per map) give what a lookup per entry gives, and the names and
backend addresses the balancer keeps match what the maps hold."""

from __future__ import annotations

from shoal.dataplane import abi
from shoal.dataplane.balancer import Balancer

from .harness import VIP6, Net, config, vip


def test_batch_sums_equal_lookups_per_entry(net: Net, lb: Balancer) -> None:
    lb.apply(config(vip(), vip(port=443, backends=2), vip(address=VIP6, family=6)))
    states = lb.vips()
    for i, st in enumerate(states.values()):
        lb.maps.vip_stats.set_all(st.vip_id, abi.Traffic(packets=3 + i, bytes=1000 + i))
        lb.maps.acl_drops.set_all(st.vip_id, abi.u64(7 * i))
    for slot in lb.backends():
        lb.maps.backend_stats.set_all(slot, abi.Traffic(packets=slot + 1, bytes=2 * slot))
    traffic, drops, backends = lb.counter_arrays()
    assert traffic.shape == (lb.max_vips, 2) and backends.shape == (lb.max_backends, 2)
    for st in states.values():
        assert tuple(traffic[st.vip_id].tolist()) == lb.vip_traffic(st.vip_id)
        assert int(drops[st.vip_id, 0]) == lb.acl_drops(st.vip_id)
    slow = {(v, a): p for v, a, p, _ in lb.backend_stats()}
    fast = {(v, a): int(backends[slot, 0]) for slot, v, a in lb.backend_slots()}
    assert fast == slow and len(fast) == 3 + 2 + 3
    assert lb.vip_ids() == {name: st.vip_id for name, st in states.items()}
