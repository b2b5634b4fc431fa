"""Kernel portability (6.1 up): the feature probes answer for this kernel, and the decap
program's fallback for kernels without BPF_F_ADJ_ROOM_DECAP_L3_* strips every tunnel that
changes family exactly like the newer path, so both are tested on whatever kernel runs this."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from shoal.dataplane import features, loader
from shoal.dataplane.decap import Decap
from shoal.dataplane.testrun import XdpAction, run_prog, run_xdp
from shoal.errors import ShoalError

pytestmark = pytest.mark.bpf
TC_ACT_OK = 0
E = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
INNER4 = IP(src="192.0.2.1", dst="10.0.0.100") / TCP(sport=1234, dport=80, flags="S") / (b"x" * 9)
INNER6 = IPv6(src="2001:db8::1", dst="fd00::100") / UDP(sport=1234, dport=53) / (b"y" * 30)
OUTER6 = IPv6(src="fd00:5ea1::9", dst="fd01::1")
OUTER4 = IP(src="172.16.0.9", dst="10.1.0.1")
GUE = UDP(sport=49152, dport=6080)
FAMILY_CHANGES = {
    "ipv4 in ipv6": (E / IPv6(src="fd00:5ea1::9", dst="fd01::1", nh=4) / INNER4, INNER4, "ip6ip"),
    "gue6 with ipv4 inside": (E / OUTER6 / GUE / INNER4, INNER4, "gue6"),
    "gue4 with ipv6 inside": (E / OUTER4 / GUE / INNER6, INNER6, "gue4"),
}
PATHS = {
    "adjust_room decap flags": features.KernelFeatures(adjust_room_decap_l3=True),
    "change_proto fallback": features.KernelFeatures(adjust_room_decap_l3=False),
}


def test_probe_answers_for_this_kernel() -> None:
    found = features.probe()
    assert features.probe() is found  # probed once per process
    version = features.kernel_version()
    if version >= (6, 3):
        assert found.adjust_room_decap_l3
    elif version == (6, 1):  # Debian 12: the flags arrived in 6.3 and were not backported
        assert not found.adjust_room_decap_l3


def test_kernel_version_parses_distribution_releases() -> None:
    assert features.kernel_version("6.1.0-57-amd64") == (6, 1)
    assert features.kernel_version("6.18.2") == (6, 18)
    assert features.kernel_version("5.15.0-91-generic") == (5, 15)


@pytest.fixture(params=list(PATHS), scope="module")
def decap(request: pytest.FixtureRequest) -> Iterator[Decap]:
    kernel = PATHS[request.param]
    if kernel.adjust_room_decap_l3 and not features.probe().adjust_room_decap_l3:
        pytest.skip("this kernel's bpf_skb_adjust_room has no decap flags")
    d = Decap(gue_port=6080, local_vips=["10.0.0.0/24", "fd00::/64"], kernel=kernel)
    yield d
    d.close()


@pytest.mark.parametrize("name", list(FAMILY_CHANGES))
def test_family_changing_tunnels_are_stripped_on_both_paths(decap: Decap, name: str) -> None:
    frame, inner, counter = FAMILY_CHANGES[name]
    before = decap.counters()[counter]
    res = run_prog(decap.obj.prog_fd("shoal_decap"), bytes(frame))
    assert res.action_value == TC_ACT_OK
    out = Ether(res.frame)
    assert out.dst == E.dst and out.src == E.src
    assert out.type == (0x86DD if inner.version == 6 else 0x0800)
    assert bytes(out.payload) == bytes(inner)  # nothing of the outer header is left
    assert decap.counters()[counter] == before + 1
    assert decap.counters()["error"] == 0


def test_a_truncated_inner_header_is_left_alone_on_both_paths(decap: Decap) -> None:
    """Only a whole inner header is stripped to: a cut one passes to the kernel unchanged."""
    frame = bytes(E / OUTER6 / GUE / INNER4)[: 14 + 40 + 8 + 12]
    res = run_prog(decap.obj.prog_fd("shoal_decap"), frame)
    assert res.action_value == TC_ACT_OK
    assert res.frame == frame


def test_a_rodata_switch_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ShoalError):
        loader.BpfObject(loader.bpf_object_path("decap"), None, rodata={".rodata.compat": b"\0"})


def test_the_benchmark_yardsticks_load_and_run_on_this_kernel() -> None:
    """`shoal bench dataplane` loads these beside the load balancer: each must pass the verifier
    here, write for a frame that holds a flow key, and refuse a frame too short for one."""
    frame = bytes(E / INNER4)
    with loader.BpfObject(loader.bpf_object_path("trivial"), None) as obj:
        for prog in ("shoal_trivial", "shoal_lru_insert", "shoal_table_insert"):
            fd = obj.prog_fd(prog)
            for _ in range(2):  # a new key, then the same key again
                assert run_xdp(fd, frame).action == XdpAction.PASS, prog
        for prog in ("shoal_lru_insert", "shoal_table_insert"):
            assert run_xdp(obj.prog_fd(prog), frame[:30]).action == XdpAction.DROP, prog
