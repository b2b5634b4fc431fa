"""The flow hash is the same in C and Python: the probe program runs the data plane's own
parser and hash and returns the hash through BPF_PROG_TEST_RUN."""

from __future__ import annotations

import ctypes
import ipaddress
from collections.abc import Iterator

import mmh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.dataplane import flowhash, loader, packets
from shoal.dataplane.maps import KernelMap, TypedMap
from shoal.dataplane.testrun import run_xdp

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="module")
def probe() -> Iterator[tuple[int, TypedMap]]:
    with loader.BpfObject(loader.bpf_object_path("probe"), None) as obj:
        args = TypedMap(KernelMap(obj.map_fd("shoal_probe_args")), ctypes.c_uint32, ctypes.c_uint32)
        yield obj.prog_fd("shoal_probe_hash"), args


ipv4 = st.integers(1, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.integers(1, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
ports = st.integers(0, 65535)


@settings(max_examples=300, deadline=None)
@given(
    family=st.sampled_from([4, 6]),
    data=st.data(),
    sport=ports,
    dport=ports,
    udp=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    src_only=st.booleans(),
)
def test_c_and_python_hash_agree(probe, family, data, sport, dport, udp, seed, src_only) -> None:
    prog_fd, args = probe
    addr = ipv4 if family == 4 else ipv6
    src, dst = data.draw(addr), data.draw(addr)
    args.set(0, ctypes.c_uint32(seed))
    args.set(1, ctypes.c_uint32(int(src_only)))
    if udp:
        frame = packets.udp_frame(src, dst, sport, dport)
    else:
        frame = packets.tcp_frame(src, dst, sport, dport)
    from_c = run_xdp(prog_fd, frame).action_value
    key = flowhash.flow_key(src, dst, sport, dport, "udp" if udp else "tcp")
    assert from_c == flowhash.flow_hash(key, seed, src_only)


@given(key=st.binary(min_size=40, max_size=40), seed=st.integers(0, 2**32 - 1))
def test_python_hash_is_murmur3(key: bytes, seed: int) -> None:
    """An independent MurmurHash3 implementation agrees with ours."""
    import struct

    words = struct.unpack("<10I", key)
    assert flowhash.murmur3_words(words, seed) == mmh3.hash(key, seed, signed=False)
