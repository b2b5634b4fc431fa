"""The Katran same-run bench loads an object built outside Shoal and fills its maps. With
SHOAL_KATRAN_OBJECT=path/to/balancer.o (docs/performance.md: how to build it) these check that
the filled object forwards the bench's frames as Katran should, so the bench measures Katran's
forwarding path and not a miss; without it only the refusal of a foreign object runs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.bench import dataplane as dp
from shoal.bench.katran import KatranBalancer
from shoal.dataplane import loader
from shoal.dataplane.testrun import XdpAction, run_xdp
from shoal.errors import DataplaneError

REALS = [f"10.1.0.{i}" for i in range(1, 11)]
NEXT_HOP = "02:00:00:00:be:01"


@pytest.fixture
def katran_lb() -> Iterator[KatranBalancer]:
    path = os.environ.get("SHOAL_KATRAN_OBJECT")
    if not path:
        pytest.skip("SHOAL_KATRAN_OBJECT not set (a Katran balancer object built outside Shoal)")
    with KatranBalancer(Path(path), dp.VIP, 80, REALS, NEXT_HOP, 4096) as lb:
        yield lb


def test_a_packet_not_for_the_vip_passes(katran_lb: KatranBalancer) -> None:
    res = run_xdp(katran_lb.prog_fd, dp._frames("not_vip", 1)[0])
    assert res.action == XdpAction.PASS


def test_a_syn_to_the_vip_is_ipip_encapsulated_to_a_real(katran_lb: KatranBalancer) -> None:
    frame = dp._frames("syn", 1)[0]
    first = run_xdp(katran_lb.prog_fd, frame)
    assert first.action == XdpAction.TX
    out = first.frame
    assert out[0:6] == bytes.fromhex(NEXT_HOP.replace(":", ""))  # ctl_array[0]
    assert out[12:14] == b"\x08\x00" and out[14 + 9] == 4  # outer IPv4 carrying IPIP
    real = ".".join(str(b) for b in out[14 + 16 : 14 + 20])
    assert real in REALS
    again = run_xdp(katran_lb.prog_fd, frame)
    assert again.frame == out  # the same flow goes to the same real


def test_distinct_flows_spread_over_the_reals(katran_lb: KatranBalancer) -> None:
    reals = set()
    for frame in dp._frames("new_flow", 200):
        res = run_xdp(katran_lb.prog_fd, frame)
        assert res.action == XdpAction.TX
        reals.add(res.frame[14 + 16 : 14 + 20])
    assert len(reals) == len(REALS)  # every ring slot holds a real, and all are used


def test_an_object_that_is_not_katran_is_refused_in_one_line() -> None:
    with pytest.raises(DataplaneError, match="not a Katran balancer object"):
        KatranBalancer(loader.bpf_object_path("trivial"), dp.VIP, 80, REALS, NEXT_HOP, 64)


def test_a_file_that_is_not_bpf_at_all_is_refused_in_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "balancer.o"
    junk.write_bytes(b"\x7fELF not really")
    with pytest.raises(DataplaneError, match="not a Katran balancer object"):
        KatranBalancer(junk, dp.VIP, 80, REALS, NEXT_HOP, 64)
