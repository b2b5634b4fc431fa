"""Fixtures for packet tests through BPF_PROG_TEST_RUN.

The tests run inside a private network namespace (entered on this thread) holding one veth with
fixed neighbours, so bpf_fib_lookup gives deterministic next hops and nothing can leave."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shoal import netns
from shoal.dataplane.balancer import Balancer

from .harness import BACKENDS4, BACKENDS6, LB_MAC, Net

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="package")
def net() -> Iterator[Net]:
    name = f"shoal-t{os.getpid()}-bpf"
    netns.add(name)
    try:
        cmds = [
            ["ip", "link", "add", "lb0", "address", LB_MAC, "type", "veth", "peer", "name", "lb1"],
            ["ip", "link", "set", "lb0", "up"],
            ["ip", "link", "set", "lb1", "up"],
            ["ip", "addr", "add", "10.1.0.254/24", "dev", "lb0"],
            ["ip", "addr", "add", "fd01::fe/64", "dev", "lb0", "nodad"],
            ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
            ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
        ]
        for ip, mac in {**BACKENDS4, **BACKENDS6}.items():
            cmds.append(
                ["ip", "neigh", "replace", ip, "lladdr", mac, "nud", "permanent", "dev", "lb0"]
            )
        for cmd in cmds:
            netns.run(cmd, name)
        # Stay in the namespace for the whole session: test runs resolve next hops here.
        with netns.entered(name):
            yield Net(name, netns.ifindex("lb0"), LB_MAC)
    finally:
        netns.delete(name)


@pytest.fixture(scope="package", autouse=True)
def one_cpu() -> Iterator[None]:
    """Per-CPU state (flood detector, LRU lists) is only predictable on one CPU."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    yield
    os.sched_setaffinity(0, before)


@pytest.fixture
def lb(net: Net) -> Iterator[Balancer]:
    with Balancer.load(
        pin=False, session_cache_size=8192, max_vips=64, max_backends=1024
    ) as balancer:
        yield balancer
