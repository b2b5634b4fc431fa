"""Address prefixes as the data plane's LPM trie keys (bpf/shoal_abi.h: shoal_lpm*_key,
shoal_acl*_key), and a prefix set kept in a pair of tries (one per address family).

An LPM trie key is a bit count followed by the bytes it counts over; addresses are in network
byte order, and the ACL keys put the 32-bit ACL id in front of the address, always matched
whole."""

from __future__ import annotations

import ctypes
import ipaddress
from collections.abc import Iterable

from shoal.dataplane import abi, flowhash
from shoal.dataplane.maps import TypedMap

__all__ = [
    "IpNetwork",
    "PrefixTries",
    "acl_key",
    "acl_key_network",
    "lpm_key",
    "lpm_key_network",
    "parse_networks",
]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ONE = ctypes.c_uint32(1)  # the tries' value: presence is what counts


def parse_networks(values: Iterable[str | IpNetwork]) -> list[IpNetwork]:
    """Prefixes from text (host bits allowed, as Octavia does), sorted and without duplicates."""
    nets = {v if not isinstance(v, str) else ipaddress.ip_network(v, strict=False) for v in values}
    return sorted(nets, key=lambda n: (n.version, n.network_address.packed, n.prefixlen))


def lpm_key(net: IpNetwork) -> abi.Lpm4Key | abi.Lpm6Key:
    words = flowhash.addr_words(net.network_address)
    if net.version == 4:
        return abi.Lpm4Key(prefixlen=net.prefixlen, addr=words[0])
    key6 = abi.Lpm6Key(prefixlen=net.prefixlen)
    key6.addr[:] = words
    return key6


def _network(words: Iterable[int], version: int, prefixlen: int) -> IpNetwork:
    packed = b"".join(w.to_bytes(4, "little") for w in words)
    return ipaddress.ip_network((packed[:4] if version == 4 else packed, prefixlen))


def lpm_key_network(key: abi.Lpm4Key | abi.Lpm6Key) -> IpNetwork:
    if isinstance(key, abi.Lpm4Key):
        return _network([key.addr], 4, key.prefixlen)
    return _network(key.addr, 6, key.prefixlen)


def acl_key(acl_id: int, net: IpNetwork) -> abi.Acl4Key | abi.Acl6Key:
    """The trie key of one allowed prefix of an ACL id: 32 bits of id, then the prefix."""
    words = flowhash.addr_words(net.network_address)
    if net.version == 4:
        return abi.Acl4Key(prefixlen=32 + net.prefixlen, acl_id=acl_id, addr=words[0])
    key6 = abi.Acl6Key(prefixlen=32 + net.prefixlen, acl_id=acl_id)
    key6.addr[:] = words
    return key6


def acl_key_network(key: abi.Acl4Key | abi.Acl6Key) -> tuple[int, IpNetwork]:
    """(ACL id, prefix) of a trie key."""
    if isinstance(key, abi.Acl4Key):
        return int(key.acl_id), _network([key.addr], 4, key.prefixlen - 32)
    return int(key.acl_id), _network(key.addr, 6, key.prefixlen - 32)


class PrefixTries:
    """A set of prefixes of both families held in two LPM tries (decap sources, local VIPs)."""

    def __init__(
        self,
        trie4: TypedMap[abi.Lpm4Key, ctypes.c_uint32],
        trie6: TypedMap[abi.Lpm6Key, ctypes.c_uint32],
    ) -> None:
        self.trie4 = trie4
        self.trie6 = trie6

    def networks(self) -> list[IpNetwork]:
        keys: list[abi.Lpm4Key | abi.Lpm6Key] = [k for k, _ in self.trie4.items()]
        keys += [k for k, _ in self.trie6.items()]
        return parse_networks(lpm_key_network(k) for k in keys)

    def replace(self, nets: Iterable[IpNetwork]) -> None:
        """Makes the tries hold exactly nets: new prefixes first, then the stale ones go, so
        a prefix kept in both sets never disappears in between."""
        wanted = set(parse_networks(nets))
        current = set(self.networks())
        for net in sorted(wanted - current, key=str):
            self._trie(net).set(lpm_key(net), ONE)
        for net in sorted(current - wanted, key=str):
            self._trie(net).delete(lpm_key(net))

    def _trie(self, net: IpNetwork) -> TypedMap:  # type: ignore[type-arg]
        return self.trie4 if net.version == 4 else self.trie6
