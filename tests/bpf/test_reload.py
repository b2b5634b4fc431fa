"""Pinned maps: a reload or upgrade of the program keeps sessions, tables and counters, and the
new program replaces the old one on the interface without a detach."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from shoal.dataplane import loader, packets
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.testrun import XdpAction, run_xdp
from shoal.errors import DataplaneError

from .harness import LB_MAC, VIP4, Net, config, vip

pytestmark = pytest.mark.bpf
TO_LB = bytes.fromhex(LB_MAC.replace(":", ""))


@pytest.fixture
def instance() -> Iterator[str]:
    name = f"test{os.getpid()}"
    yield name
    Balancer.purge(name)


def load(instance: str, **kw: int) -> Balancer:
    return Balancer.load(
        instance, session_cache_size=kw.get("sessions", 8192), max_vips=64, max_backends=1024
    )


def backend_of(lb: Balancer, net: Net, sport: int, flags: int) -> str:
    frame = packets.tcp_frame("192.0.2.50", VIP4, sport, 80, flags, dmac=TO_LB)
    res = run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex)
    assert res.action == XdpAction.TX
    return str(Ether(res.frame)[IP].dst)


def test_reload_keeps_sessions_tables_and_counters(net: Net, instance: str) -> None:
    with load(instance) as first:
        first.apply(config(vip(backends=2)))
        flows = {p: backend_of(first, net, p, packets.TCP_SYN) for p in range(100, 160)}
        tx = first.counters()["tx"]
    # A new process: the maps come back from bpffs, the program is loaded afresh.
    with load(instance) as second:
        assert second.counters()["tx"] == tx
        assert set(second.vips()) == {"tcp://10.0.0.100:80"}
        for p in flows:  # the sessions survived the reload
            assert second.trace("192.0.2.50", p, VIP4, 80, "tcp").via == "session"
        second.apply(config(vip(backends=6)))
        for p, b in flows.items():
            assert backend_of(second, net, p, packets.TCP_ACK) == b


def test_program_is_replaced_on_the_interface_in_place(net: Net, instance: str) -> None:
    with load(instance) as first:
        assert first.attach("lb1", mode="generic") == "generic"
        before = loader.xdp_prog_id(_ifindex("lb1"))
        with load(instance) as second:
            second.attach("lb1", mode="generic")
            after = loader.xdp_prog_id(_ifindex("lb1"))
        assert before and after and before != after
    # The attachment outlives the loading process's handles.
    assert loader.xdp_prog_id(_ifindex("lb1")) == after
    assert Balancer.detach("lb1")
    assert loader.xdp_prog_id(_ifindex("lb1")) == 0


def _ifindex(name: str) -> int:
    return socket.if_nametoindex(name)


def test_incompatible_pinned_maps_are_refused_with_advice(net: Net, instance: str) -> None:
    load(instance).close()
    with pytest.raises(DataplaneError, match="purge"):
        load(instance, sessions=4096)
