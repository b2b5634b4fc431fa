"""Constants and builders shared by the packet tests."""

from __future__ import annotations

from dataclasses import dataclass

from shoal.dataplane.balancer import Balancer
from shoal.dataplane.config import DataplaneConfig, parse_config
from shoal.dataplane.testrun import XdpAction, run_xdp
from shoal.lab.sandbox import SANDBOX_BACKENDS4, SANDBOX_BACKENDS6, SANDBOX_LB_MAC

LB_MAC = SANDBOX_LB_MAC
BACKENDS4 = dict(list(SANDBOX_BACKENDS4.items())[:6])
BACKENDS6 = dict(list(SANDBOX_BACKENDS6.items())[:6])
VIP4, VIP6 = "10.0.0.100", "fd00::100"


@dataclass(frozen=True)
class Net:
    ns: str
    ifindex: int
    lb_mac: str


def config(*vips: dict, **settings: object) -> DataplaneConfig:
    return parse_config({"settings": settings, "vips": list(vips)})


def vip(
    address: str = VIP4,
    port: int = 80,
    protocol: str = "tcp",
    backends: int | list = 3,
    family: int = 4,
    **extra: object,
) -> dict:
    if isinstance(backends, int):
        pool = BACKENDS4 if family == 4 else BACKENDS6
        backends = [{"address": a} for a in list(pool)[:backends]]
    return {
        "address": address,
        "port": port,
        "protocol": protocol,
        "table_size": 251,
        "backends": backends,
        **extra,
    }


def check(lb: Balancer, net: Net, frame: bytes, expected: str) -> None:
    """Runs frame and asserts the oracle's verdict (tests/bpf/oracle.py)."""
    res = run_xdp(lb.prog_fd, frame, ingress_ifindex=net.ifindex)
    if expected == "pass":
        assert res.action == XdpAction.PASS
        assert res.frame == frame
    elif expected == "balance":
        assert res.action == XdpAction.TX
    elif expected == "drop":
        assert res.action == XdpAction.DROP
    else:  # a later fragment: follows its first fragment, or goes to the kernel untouched
        assert res.action in (XdpAction.TX, XdpAction.PASS)
        if res.action == XdpAction.PASS:
            assert res.frame == frame
