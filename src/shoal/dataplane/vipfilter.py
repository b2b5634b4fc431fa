"""The VIP address pre-filter (bpf/lb/vip.h): a 2^16-bit bitmap over a multiplicative hash of
the destination address. Traffic to an address whose bit is clear passes without a hash-map
lookup; a set bit only means "maybe a VIP" and the exact lookup decides."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from shoal.dataplane import abi, flowhash

__all__ = ["filter_index", "filter_words"]


def filter_index(address: flowhash.IpAddress) -> int:
    """The bit the data plane tests for this destination address."""
    w = flowhash.addr_words(address)
    folded = w[0] ^ w[1] ^ w[2] ^ w[3]
    return ((folded * abi.VIP_FILTER_MULT) & 0xFFFFFFFF) >> (32 - abi.VIP_FILTER_BITS)


def filter_words(addresses: Iterable[flowhash.IpAddress]) -> npt.NDArray[np.uint64]:
    """The whole bitmap, one u64 per map entry, with a bit set for every address."""
    words = np.zeros(abi.VIP_FILTER_WORDS, dtype="<u8")
    for address in addresses:
        h = filter_index(address)
        words[h >> 6] |= np.uint64(1) << np.uint64(h & 63)
    return words
