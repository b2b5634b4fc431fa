"""Which IP addresses may become a VIP or a member: the one classifier the controller (API
checks, VIP pools) and the L4 agent (what it announces) share.

Refused everywhere: unspecified, loopback, link-local, multicast, broadcast and reserved
ranges, IPv4-mapped IPv6 (say the IPv4 address), and zone ids ("fe80::1%eth0"). Private
ranges (10/8, 172.16/12, 192.168/16, fc00::/7) and the documentation ranges stay usable:
private clouds run on them."""

from __future__ import annotations

import ipaddress
from typing import Final

__all__ = [
    "IpAddress",
    "IpNetwork",
    "address_refusal",
    "network_refusal",
    "parse_address",
    "parse_network",
]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_N = ipaddress.ip_network
# Most specific first: the first match names the reason.
SPECIAL: Final[tuple[tuple[IpNetwork, str], ...]] = (
    (_N("0.0.0.0/32"), "unspecified"),
    (_N("0.0.0.0/8"), "reserved ('this network')"),
    (_N("127.0.0.0/8"), "loopback"),
    (_N("169.254.0.0/16"), "link-local"),
    (_N("192.0.0.0/24"), "reserved (IETF protocol assignments)"),
    (_N("224.0.0.0/4"), "multicast"),
    (_N("255.255.255.255/32"), "broadcast"),
    (_N("240.0.0.0/4"), "reserved"),
    (_N("::/128"), "unspecified"),
    (_N("::1/128"), "loopback"),
    (_N("::ffff:0:0/96"), "IPv4-mapped (use the IPv4 address)"),
    (_N("100::/64"), "reserved (discard-only)"),
    (_N("fe80::/10"), "link-local"),
    (_N("fec0::/10"), "reserved (site-local)"),
    (_N("ff00::/8"), "multicast"),
)
# IPv6 unicast in use: global unicast and unique local; the rest is unassigned or special.
IPV6_UNICAST: Final[tuple[IpNetwork, ...]] = (_N("2000::/3"), _N("fc00::/7"))


def parse_address(text: str) -> IpAddress:
    """An address without a zone id; ValueError with a readable reason otherwise."""
    if "%" in text:
        raise ValueError(f"{text!r} carries a zone id: give the address alone")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address") from None


def parse_network(text: str) -> IpNetwork:
    """A prefix in strict form (no host bits set)."""
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a network prefix: {exc}") from None


def address_refusal(ip: IpAddress) -> str | None:
    """Why ip may be neither a VIP nor a member, or None when it may."""
    for net, reason in SPECIAL:
        if ip.version == net.version and ip in net:
            return reason
    if ip.version == 6 and not any(ip in net for net in IPV6_UNICAST):
        return "reserved (not global unicast or unique local)"
    return None


def network_refusal(net: IpNetwork) -> str | None:
    """Why a prefix may not be a VIP pool (it touches a refused range), or None."""
    for special, reason in SPECIAL:
        if net.version == special.version and net.overlaps(special):
            return f"overlaps {special} ({reason})"
    if net.version == 6 and not any(net.subnet_of(u) for u in IPV6_UNICAST):  # type: ignore[arg-type]
        return "lies outside global unicast (2000::/3) and unique local (fc00::/7)"
    return None
