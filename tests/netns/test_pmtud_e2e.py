"""Path-MTU discovery through the L4 tier, end to end with real TCP (src/shoal/lab/pmtu.py):
- download: a hop between the backends' direct replies and the client carries 1280 bytes;
  its frag-needed / packet-too-big goes to the VIP, the L4 node sends it on to the backend
  that owns the flow, the backend lowers its path MTU, the download completes;
- upload: the client's 1500-byte packets do not fit the tunnel; the L4 node answers with
  frag-needed / packet-too-big carrying the tunnel's MTU, the upload completes."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator

import pytest

from shoal import netns
from shoal.lab.pmtu import SMALL_MTU, VIP4, VIP6, PmtuLab

pytestmark = pytest.mark.netns
SIZE = 2 << 20  # many full-size segments: without PMTUD none of them arrives
DEADLINE = 60.0  # seconds; generous for a loaded machine, the transfer itself takes < 1 s


@pytest.fixture(scope="module")
def lab() -> Iterator[PmtuLab]:
    with PmtuLab(prefix=f"pm{os.getpid()}") as lab:
        yield lab


def download(vip: str, size: int) -> tuple[int, str]:
    """GET /bytes/size from the VIP; returns (bytes received, backend)."""
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect((vip, 80))
        s.sendall(f"GET /bytes/{size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    backend = next(
        (
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"x-backend")
        ),
        "",
    )
    return len(body), backend


def upload(vip: str, size: int) -> int:
    """Sends size bytes to the echo service and reads them back; returns the bytes echoed."""
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect((vip, 7))
        greeting = s.recv(100)
        assert greeting.startswith(b"shoal-echo")
        payload = b"u" * size
        got = 0
        deadline = time.monotonic() + DEADLINE
        s.setblocking(False)
        sent = 0
        while got < size and time.monotonic() < deadline:
            if sent < size:
                with contextlib.suppress(BlockingIOError):
                    sent += s.send(payload[sent : sent + (1 << 16)])
            try:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                got += len(chunk)
            except BlockingIOError:
                time.sleep(0.001)
        return got


@pytest.mark.parametrize("family", [4, 6])
def test_large_download_completes_through_pmtud(lab: PmtuLab, family: int) -> None:
    assert lab.lb is not None
    lab.lb.apply(lab.config(family=family))
    lab.forget_path_mtus()
    before = lab.lb.counters()["icmp_forwarded"]
    vip = VIP4 if family == 4 else VIP6
    with netns.entered(lab.ns["client"]):
        for _ in range(2):  # two flows: the second may start with a learnt path MTU
            received, backend = download(vip, SIZE)
            assert received == SIZE
            assert backend.startswith("b")
    # The first flow's errors went through the L4 node to its backend.
    assert lab.lb.counters()["icmp_forwarded"] > before
    route = lab.topo.run(
        lab.ns[backend],
        "ip",
        "-o",
        "route",
        "get",
        "10.79.1.2" if family == 4 else "fd79:1::2",
        "from",
        vip,
    )
    assert f"mtu {SMALL_MTU}" in route or "mtu" in route


@pytest.mark.parametrize("family", [4, 6])
def test_large_upload_completes_through_the_tunnels_too_big_replies(
    lab: PmtuLab, family: int
) -> None:
    assert lab.lb is not None
    lab.lb.apply(
        lab.config(family=family, settings={"mtu": 1400})
    )  # the tunnel: 1380 / 1360 bytes inside
    lab.set_client_link_mtu(1500)  # the client's full-size packets reach the L4 node
    lab.forget_path_mtus()
    try:
        before = lab.lb.counters()["icmp_too_big"]
        vip = VIP4 if family == 4 else VIP6
        with netns.entered(lab.ns["client"]):
            assert upload(vip, 1 << 20) == 1 << 20
        assert lab.lb.counters()["icmp_too_big"] > before
        client = lab.topo.run(lab.ns["client"], "ip", "route", "get", vip)
        assert f"mtu {1400 - (20 if family == 4 else 40)}" in client
    finally:
        lab.set_client_link_mtu(SMALL_MTU)
        lab.lb.apply(lab.config(family=family))
