"""Fixtures for packet tests through BPF_PROG_TEST_RUN. The tests run inside a private network
namespace (entered on this thread) with fixed neighbours, so bpf_fib_lookup gives deterministic
next hops and nothing can leave."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shoal.dataplane.balancer import Balancer
from shoal.lab.sandbox import sandbox

from .harness import Net

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="package")
def net() -> Iterator[Net]:
    with sandbox("bpftest") as box:
        yield Net(box.ns, box.ifindex, box.lb_mac)


@pytest.fixture(scope="package", autouse=True)
def one_cpu() -> Iterator[None]:
    """Per-CPU state (flood detector, session stripes) is only predictable on one CPU."""
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
