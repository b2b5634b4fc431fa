"""The address classifier: what may become a VIP or a member."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.addresses import address_refusal, network_refusal, parse_address, parse_network

v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
v6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
# Bias towards the interesting neighbourhoods, not only uniform noise.
near_special = st.sampled_from(
    [
        "0.0.0.0",
        "127.0.0.1",
        "169.254.0.1",
        "224.0.0.0",
        "239.255.255.255",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::ffff:10.0.0.1",
        "fe80::1",
        "ff02::1",
        "2000::",
        "fc00::",
    ]
).map(ipaddress.ip_address)
addresses = st.one_of(v4, v6, near_special)


@given(addresses)
def test_accepted_addresses_are_ordinary_unicast(ip) -> None:
    if address_refusal(ip) is not None:
        return
    assert not (ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_multicast)
    if ip.version == 4:
        assert not ip.is_reserved and ip != ipaddress.IPv4Address("255.255.255.255")
    else:
        assert ip.ipv4_mapped is None and not ip.is_reserved and not ip.is_site_local


@given(addresses)
def test_every_special_address_is_refused(ip) -> None:
    special = ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_multicast
    special |= ip.is_reserved or (ip.version == 6 and ip.ipv4_mapped is not None)
    if special:
        assert address_refusal(ip) is not None


@given(addresses)
def test_the_answer_survives_a_round_trip_through_text(ip) -> None:
    assert address_refusal(parse_address(str(ip))) == address_refusal(ip)


@given(st.one_of(v4, v6), st.integers(0, 128))
def test_an_accepted_prefix_holds_only_accepted_addresses(ip, length) -> None:
    net = ipaddress.ip_network(f"{ip}/{min(length, ip.max_prefixlen)}", strict=False)
    if network_refusal(net) is not None:
        return
    for probe in (net.network_address, net.broadcast_address, net[net.num_addresses // 2]):
        assert address_refusal(probe) is None, (net, probe)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.0.0.0", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("169.254.169.254", "link-local"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("::ffff:8.8.8.8", "IPv4-mapped"),
    ],
)
def test_reasons_are_named(text: str, reason: str) -> None:
    refusal = address_refusal(parse_address(text))
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize("text", ["10.0.0.1", "192.168.1.1", "203.0.113.7", "8.8.8.8", "fd00::1"])
def test_ordinary_addresses_pass(text: str) -> None:
    assert address_refusal(parse_address(text)) is None


def test_zone_ids_and_host_bits_are_refused() -> None:
    with pytest.raises(ValueError, match="zone id"):
        parse_address("fe80::1%eth0")
    with pytest.raises(ValueError, match="not a network prefix"):
        parse_network("10.0.0.1/24")
    assert network_refusal(parse_network("0.0.0.0/0")) is not None
    assert network_refusal(parse_network("::/0")) is not None
    assert network_refusal(parse_network("10.200.0.0/16")) is None
