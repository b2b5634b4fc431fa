"""Kernel features Shoal's programs depend on where supported kernels differ (6.1 up).

Each feature has a probe program in bpf/features/features.bpf.c, run once per process through
BPF_PROG_TEST_RUN: the kernel's own answer, not a version guess (distributions backport). The
result is cached and logged once; loaders turn it into the .rodata switches of their objects."""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import struct
from dataclasses import dataclass

from shoal.dataplane import abi, loader, packets
from shoal.dataplane.testrun import run_prog

__all__ = ["KernelFeatures", "decap_rodata", "kernel_version", "probe"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KernelFeatures:
    # bpf_skb_adjust_room takes BPF_F_ADJ_ROOM_DECAP_L3_IPV4/6 (Linux 6.3): decap changes the
    # L3 protocol in one call; without it, bpf_skb_change_proto first (bpf/decap/compat.h).
    adjust_room_decap_l3: bool


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of the running kernel, e.g. (6, 1) for 6.1.0-57-amd64."""
    release = release or os.uname().release
    major, minor = release.split("-")[0].split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def _ipv4_in_ipv6() -> bytes:
    inner = packets.udp_frame("192.0.2.1", "192.0.2.2", 1, 2)[14:]
    outer = struct.pack(
        "!IHBB16s16s",
        6 << 28,
        len(inner),
        4,  # IPPROTO_IPIP
        64,
        ipaddress.ip_address("fd00::1").packed,
        ipaddress.ip_address("fd00::2").packed,
    )
    return packets.MAC_B + packets.MAC_A + b"\x86\xdd" + outer + inner


@functools.cache
def probe() -> KernelFeatures:
    """The running kernel's features (probed on first call, then cached)."""
    with loader.BpfObject(loader.bpf_object_path("features"), None) as obj:
        fd = obj.prog_fd("shoal_feature_adjust_room_decap_l3")
        decap_l3 = run_prog(fd, _ipv4_in_ipv6()).action_value == 1
    features = KernelFeatures(adjust_room_decap_l3=decap_l3)
    log.info("kernel %s: %s", os.uname().release, features)
    return features


def decap_rodata(features: KernelFeatures) -> dict[str, bytes]:
    """The decap object's .rodata.compat section for these features."""
    value = abi.DecapFeatures(adjust_room_decap_l3=int(features.adjust_room_decap_l3))
    return {".rodata.compat": bytes(value)}
