"""Client -> XDP load balancer (encap srv6) -> backends whose kernel strips IPv6 + SRH with
seg6local End.DX4 / End.DT6 -> reply straight to the client (DSR), real TCP in namespaces.

Each backend gets SIDs of its own, routed to it from the L4 node (a locator per backend, as an
SRv6 fabric would route it), not its interface address: the local table would shadow a
seg6local route on an address the host holds."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shoal import netns
from shoal.lab.l4mini import VIP4, VIP6, L4MiniLab
from shoal.lab.traffic import http_requests

from ..kernelcaps import seg6local_refusal, skip_if_refused

pytestmark = pytest.mark.netns


def sid(n: int, family: int) -> str:
    return f"fd77:5:{n}::d{family}"  # backend n's SID for IPv4 / IPv6 inside


@pytest.fixture(scope="module")
def lab() -> Iterator[L4MiniLab]:
    skip_if_refused(seg6local_refusal())
    with L4MiniLab(prefix=f"sr{os.getpid()}", backends=2) as lab:
        lb = lab.hosts["lb"]
        for n, host in enumerate(lab.backend_hosts, 1):
            lab.topo.sysctl(
                host.ns, net__ipv6__conf__all__seg6_enabled=1, net__ipv6__conf__eth0__seg6_enabled=1
            )
            # IPv4: End.DX4 to the VIP. IPv6: End.DT6 in the local table, which delivers only
            # to addresses the host holds (End.DX6 to a local nh6 delivered nothing here).
            behaviours = {4: ["End.DX4", "nh4", VIP4], 6: ["End.DT6", "table", "local"]}
            for family, behaviour in behaviours.items():
                lab.topo.run(
                    host.ns, "ip", "-6", "route", "add", f"{sid(n, family)}/128",
                    "encap", "seg6local", "action", *behaviour, "dev", "eth0",
                )  # fmt: skip
                lab.topo.run(
                    lb.ns, "ip", "-6", "route", "add", f"{sid(n, family)}/128", "via", host.ip6
                )
        yield lab


@pytest.mark.parametrize("family", [4, 6])
def test_http_through_srv6_reaches_every_backend_and_replies_directly(
    lab: L4MiniLab, family: int
) -> None:
    assert lab.lb is not None and lab.decap is not None
    backends = [{"address": sid(n, family)} for n in range(1, len(lab.backend_hosts) + 1)]
    lab.lb.apply(lab.config(backends, family=family, encap="srv6"))
    before_lb = lab.lb.counters()
    before_decap = sum(lab.decap.counters().values())
    with netns.entered(lab.hosts["client"].ns):
        result = http_requests(VIP4 if family == 4 else VIP6, 40, timeout=2, deadline=90)
    assert result.failed == 0, result.errors
    assert set(result.by_backend) == {"b1", "b2"}
    after = lab.lb.counters()
    sent = after["tx"] + after["pass_no_neigh"] - before_lb["tx"] - before_lb["pass_no_neigh"]
    assert sent >= 40 * 3  # every request's packets went through the L4 node, in SRv6
    assert sum(lab.decap.counters().values()) == before_decap  # the kernel stripped them


def test_a_sid_the_backend_does_not_serve_gets_nothing_through(lab: L4MiniLab) -> None:
    """A VIP pointed at a SID with no seg6local route there: the backend must not deliver the
    inner packet (it is not addressed to it), so the client sees failures, never a reply."""
    assert lab.lb is not None
    host = lab.backend_hosts[0]
    lab.topo.run(
        lab.hosts["lb"].ns, "ip", "-6", "route", "replace", "fd77:5:99::d4/128", "via", host.ip6
    )
    lab.lb.apply(lab.config([{"address": "fd77:5:99::d4"}], encap="srv6"))
    with netns.entered(lab.hosts["client"].ns):
        result = http_requests(VIP4, 2, timeout=1, deadline=10)
    assert result.failed == 2 and not result.by_backend
