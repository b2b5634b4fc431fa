"""allowed_cidrs end to end: a client inside a VIP's prefixes gets real TCP answers through the
XDP load balancer and the backends (DSR), one outside gets nothing, in both families."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from shoal import netns
from shoal.lab.l4mini import SUBNET4, SUBNET6, VIP4, VIP6, L4MiniLab

pytestmark = pytest.mark.netns
OTHER4, OTHER6 = f"{SUBNET4}.3", f"{SUBNET6}3"  # a second client address on the same host


@pytest.fixture(scope="module")
def lab() -> Iterator[L4MiniLab]:
    with L4MiniLab(prefix=f"acl{os.getpid()}") as lab:
        ns = lab.hosts["client"].ns
        lab.topo.run(ns, "ip", "addr", "add", f"{OTHER4}/24", "dev", "eth0")
        lab.topo.run(ns, "ip", "addr", "add", f"{OTHER6}/64", "dev", "eth0", "nodad")
        yield lab


def echo_from(lab: L4MiniLab, source: str, vip: str, *, tries: int, timeout: float) -> int:
    """Echo round trips to vip:7 from source that succeeded (each bounded by timeout)."""
    ok = 0
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    with netns.entered(lab.hosts["client"].ns):
        for _ in range(tries):
            try:
                with socket.socket(family, socket.SOCK_STREAM) as s:
                    s.settimeout(timeout)
                    s.bind((source, 0))
                    s.connect((vip, 7))
                    s.sendall(b"ping\n")
                    if s.recv(64):
                        ok += 1
            except OSError:
                pass
    return ok


@pytest.mark.parametrize(
    ("family", "vip", "denied"), [(4, VIP4, OTHER4), (6, VIP6, OTHER6)], ids=["ipv4", "ipv6"]
)
def test_allowed_client_connects_and_denied_one_does_not(
    lab: L4MiniLab, family: int, vip: str, denied: str
) -> None:
    client = lab.hosts["client"]
    source = client.ip4 if family == 4 else client.ip6
    prefix = 32 if family == 4 else 128
    lab.lb.apply(lab.config(family=family, allowed_cidrs=[f"{source}/{prefix}"]))
    before = lab.lb.counters()["drop_acl"]
    assert echo_from(lab, source, vip, tries=10, timeout=2) == 10
    assert echo_from(lab, denied, vip, tries=3, timeout=0.5) == 0
    assert lab.lb.counters()["drop_acl"] - before >= 3  # the SYNs (and their retries)
    # Without the list the same client gets through: it was the list that stopped it.
    lab.lb.apply(lab.config(family=family))
    assert echo_from(lab, denied, vip, tries=3, timeout=2) == 3
