"""The data plane's flow hash in Python, bit for bit (bpf/lib/flowhash.h): MurmurHash3 x86-32
over the 40-byte flow key read as ten little-endian words. It lets Python answer "which backend
gets this flow" without sending a packet; a BPF_PROG_TEST_RUN test checks the two agree."""

from __future__ import annotations

import hashlib
import ipaddress
import struct

from shoal.dataplane import abi

__all__ = ["IpAddress", "flow_hash", "flow_key", "hash_seed_from"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
PROTOCOLS = {"tcp": 6, "udp": 17}
_M32 = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def _final(h: int, length: int) -> int:
    h ^= length
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def murmur3_words(words: tuple[int, ...], seed: int) -> int:
    h = seed & _M32
    for k in words:
        k = (k * 0xCC9E2D51) & _M32
        k = _rotl(k, 15)
        k = (k * 0x1B873593) & _M32
        h ^= k
        h = _rotl(h, 13)
        h = (h * 5 + 0xE6546B64) & _M32
    return _final(h, 4 * len(words))


def addr_words(addr: IpAddress) -> tuple[int, int, int, int]:
    """An address as the four u32 words of the ABI (IPv4 in the first word, network order)."""
    packed = addr.packed.ljust(16, b"\0")
    a, b, c, d = struct.unpack("<4I", packed)
    return a, b, c, d


def flow_key(
    src: IpAddress | str, dst: IpAddress | str, sport: int, dport: int, proto: int | str
) -> abi.FlowKey:
    """The session-cache key of a flow, as the XDP parser fills it."""
    src_ip, dst_ip = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if src_ip.version != dst_ip.version:
        raise ValueError(f"{src_ip} and {dst_ip} are of different address families")
    key = abi.FlowKey()
    key.src[:] = addr_words(src_ip)
    key.dst[:] = addr_words(dst_ip)
    key.sport = int.from_bytes(sport.to_bytes(2, "big"), "little")
    key.dport = int.from_bytes(dport.to_bytes(2, "big"), "little")
    key.proto = PROTOCOLS[proto] if isinstance(proto, str) else proto
    return key


def flow_hash(key: abi.FlowKey, seed: int, src_only: bool = False) -> int:
    """The 32-bit hash the XDP program computes for this key."""
    words = struct.unpack("<10I", bytes(key))
    return murmur3_words(words[:4] if src_only else words, seed)


def hash_seed_from(seed: str) -> int:
    """The 32-bit flow-hash seed derived from the cluster seed string (same on every node)."""
    return int.from_bytes(hashlib.blake2b(seed.encode(), digest_size=4).digest(), "little")
