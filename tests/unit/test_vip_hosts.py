"""The host range VIP allocation walks is exactly what ipaddress's hosts() yields."""

from __future__ import annotations

import ipaddress

import pytest

from shoal.controller.services.vips import _host_range


@pytest.mark.parametrize(
    "cidr",
    ["10.0.0.0/24", "10.0.0.0/30", "10.0.0.0/31", "10.0.0.0/32", "fd00::/120", "fd00::/127",
     "fd00::/128"],
)  # fmt: skip
def test_host_range_matches_hosts(cidr: str) -> None:
    net = ipaddress.ip_network(cidr)
    first, last = _host_range(net)
    assert [net.network_address + i for i in range(first, last + 1)] == list(net.hosts())
