"""Flood fallback: above the new-flow threshold the node stops inserting sessions (pure Maglev)
and returns only after the rate stayed low for the hold-down."""

from __future__ import annotations

import time

import pytest

from shoal.dataplane import packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.testrun import XdpAction, run_xdp

from .harness import LB_MAC, VIP4, Net, config, vip

pytestmark = pytest.mark.bpf
TO_LB = bytes.fromhex(LB_MAC.replace(":", ""))
FLOOD = {"enter_rate": 1000, "exit_rate": 100, "hold_down": 0.4, "window": 0.05}


def syn(lb: Balancer, net: Net, n: int) -> XdpAction:
    frame = packets.tcp_frame(
        "198.51.100.7", VIP4, 1024 + n % 60000, 80, packets.TCP_SYN, dmac=TO_LB
    )
    return run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex).action


def flood_until_active(lb: Balancer, net: Net, first: int, limit: int = 5000) -> int:
    """SYNs of new flows until this CPU enters flood mode; returns the next port number. A burst
    normally spends one 50 ms window's budget within a few milliseconds; on a stalled machine it
    simply takes more SYNs, so the test asserts what flood mode does, not how fast we sent."""
    n = first
    while not lb.flood_status().active:
        assert n - first < limit, "flood mode never engaged"
        for _ in range(50):
            assert syn(lb, net, n) == XdpAction.TX  # still forwarded, by Maglev alone
            n += 1
    return n


def test_flood_mode_engages_stops_inserts_and_releases_after_hold_down(lb: Balancer, net: Net):
    lb.apply(config(vip(), flood=FLOOD))
    for n in range(40):  # under a window's budget (1000/s * 50 ms = 50), however slow
        assert syn(lb, net, n) == XdpAction.TX
    assert not lb.flood_status().active
    assert lb.counters()["cache_insert"] == 40

    n = flood_until_active(lb, net, 40)
    status = lb.flood_status()
    assert status.entries == 1 and status.exits == 0
    inserted = lb.counters()["cache_insert"]
    assert lb.counters()["cache_skip_flood"] == n - inserted
    for _ in range(100):  # in flood mode no new flow writes an entry
        assert syn(lb, net, n) == XdpAction.TX
        n += 1
    assert lb.counters()["cache_insert"] == inserted
    assert lb.counters()["cache_skip_flood"] == n - inserted

    # The flood stops. Probe slowly: flood mode must hold for the hold-down, then release.
    flood_end = time.monotonic()
    released_at = None
    while time.monotonic() - flood_end < 30:
        time.sleep(0.1)
        syn(lb, net, n)
        n += 1
        if not any(lb.flood_status().mode):
            released_at = time.monotonic() - flood_end
            break
    assert released_at is not None, "flood mode never released"
    assert released_at >= FLOOD["hold_down"]
    status = lb.flood_status()
    assert status.exits == 1 and not status.active
    before = lb.counters()["cache_insert"]
    syn(lb, net, n + 1)
    assert lb.counters()["cache_insert"] == before + 1  # inserting again


def test_reported_mode_releases_without_new_flows(lb: Balancer, net: Net) -> None:
    """The data plane re-evaluates on the next new flow; Python's report must not wait for one."""
    lb.apply(config(vip(), flood=FLOOD))
    flood_until_active(lb, net, 0)
    time.sleep(FLOOD["hold_down"] + 0.3)  # measured from the last new flow: a lower bound only
    status = lb.flood_status()
    assert any(status.mode) and not status.active


def test_flood_fallback_off_when_enter_rate_is_zero(lb: Balancer, net: Net) -> None:
    lb.apply(config(vip(), flood={"enter_rate": 0, "exit_rate": 0}))
    for n in range(300):
        syn(lb, net, n)
    assert not lb.flood_status().active
    assert lb.counters()["cache_insert"] == 300
