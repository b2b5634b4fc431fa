"""The hostile tenant: every address trick that would make the agents announce or forward to
something the tenant does not own is a 400 in Octavia's format, and nothing is written."""

# ruff: noqa: F811  (the API fixtures are imported below; tests name them as parameters)

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import (  # noqa: F401  (fixtures)
    admin,
    alice,
    client,
    database_url,
    postgres_server,
    settings,
)
from tests.api.helpers import Api

FOREIGN_POOL = "10.77.0.0/24"  # beta's own pool: alpha may not take addresses from it


def _state(admin: Api) -> dict[str, Any]:
    """What a refused request must leave untouched."""
    lbs = admin.ok("GET", "/v2/lbaas/loadbalancers")["loadbalancers"]
    return {
        "lbs": sorted((lb["id"], lb["vip_address"]) for lb in lbs),
        "audit": len(admin.ok("GET", "/v2/shoal/audit", limit=1000)["audit"]),
    }


@pytest.fixture
def foreign_pool(admin: Api) -> dict[str, Any]:
    body = {"vip_pool": {"name": "beta-only", "cidr": FOREIGN_POOL, "project_ids": ["beta"]}}
    pool: dict[str, Any] = admin.ok("POST", "/v2/shoal/vip-pools", body, expect=201)["vip_pool"]
    return pool


@pytest.mark.parametrize(
    "vip",
    [
        "8.8.8.8",  # someone else's /32 on the Internet
        "::1",
        "0.0.0.0",
        "127.0.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "169.254.169.254",  # the metadata service
        "fe80::1",
        "ff02::1",
        "10.201.0.1",  # outside every pool
        "10.77.0.5",  # inside another project's pool
    ],
)
def test_vip_hijack_is_refused(admin: Api, alice: Api, foreign_pool: dict, vip: str) -> None:
    before = _state(admin)
    r = alice.request("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_address": vip}})
    assert r.status_code == 400, r.text
    fault = r.json()
    assert fault["faultcode"] == "Client"
    assert "default" in fault["faultstring"], "the message names the pools alpha may use"
    assert "beta-only" not in fault["faultstring"], "another project's pool stays unnamed"
    assert _state(admin) == before


def test_another_projects_pool_is_refused_by_id(admin: Api, alice: Api, foreign_pool: dict) -> None:
    before = _state(admin)
    body = {"loadbalancer": {"vip_subnet_id": foreign_pool["id"]}}
    r = alice.request("POST", "/v2/lbaas/loadbalancers", body)
    assert r.status_code == 400, r.text
    assert "default" in r.json()["faultstring"]
    assert _state(admin) == before


def test_a_vip_in_use_is_refused(alice: Api) -> None:
    lb = alice.lb(flavor_id="l4")
    r = alice.request(
        "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_address": lb["vip_address"]}}
    )
    assert r.status_code == 409, r.text


@pytest.fixture
def l4_pool(alice: Api) -> dict[str, Any]:
    stack = alice.l4_stack(members=1)
    return stack


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",  # the L7 node's or backend's own services
        "224.0.0.1",
        "255.255.255.255",
        "0.0.0.0",
        "169.254.169.254",
        "fe80::1%eth0",  # a zone id
        "fe80::1",
        "::1",
        "10.200.0.200",  # an address of a VIP pool: traffic would loop into the L4 tier
        "10.77.0.9",  # another project's VIP pool
    ],
)
def test_member_address_tricks_are_refused(
    admin: Api, alice: Api, l4_pool: dict, foreign_pool: dict, address: str
) -> None:
    pool_id, lb_id = l4_pool["pool"]["id"], l4_pool["lb"]["id"]
    revision = alice.request("GET", f"/v2/lbaas/loadbalancers/{lb_id}").headers["ETag"]
    before = _state(admin)
    one = {"member": {"address": address, "protocol_port": 80}}
    r = alice.request("POST", f"/v2/lbaas/pools/{pool_id}/members", one)
    assert r.status_code == 400, r.text
    assert r.json()["faultcode"] == "Client"
    assert address.split("%")[0] in r.json()["faultstring"], "the message names the member"
    assert "beta-only" not in r.json()["faultstring"] and "10.77.0.0" not in r.json()["faultstring"]
    batch = {"members": [{"address": "10.1.0.1", "protocol_port": 80}, one["member"]]}
    r = alice.request("PUT", f"/v2/lbaas/pools/{pool_id}/members", batch)
    assert r.status_code == 400, r.text
    r = alice.request(
        "POST",
        f"/v2/lbaas/pools/{pool_id}/members",
        {"member": {"address": "10.1.0.7", "protocol_port": 80, "monitor_address": address}},
    )
    assert r.status_code == 400, r.text
    assert _state(admin) == before
    assert alice.request("GET", f"/v2/lbaas/loadbalancers/{lb_id}").headers["ETag"] == revision
    members = alice.ok("GET", f"/v2/lbaas/pools/{pool_id}/members")["members"]
    assert [m["address"] for m in members] == ["10.1.0.1"]


def test_ipv6_member_behind_an_ipv4_l4_vip_is_refused(alice: Api, l4_pool: dict) -> None:
    pool_id = l4_pool["pool"]["id"]
    r = alice.request(
        "POST",
        f"/v2/lbaas/pools/{pool_id}/members",
        {"member": {"address": "2001:db8::10", "protocol_port": 80}},
    )
    assert r.status_code == 400, r.text
    assert "2001:db8::10" in r.json()["faultstring"]


def test_refused_vip_reaches_no_node(admin: Api, alice: Api) -> None:
    """What the L4 nodes would announce: every VIP in any node's desired state lies in a pool."""
    for vip in ("8.8.8.8", "0.0.0.0", "10.201.0.1"):
        alice.request(
            "POST",
            "/v2/lbaas/loadbalancers",
            {"loadbalancer": {"flavor_id": "l4", "vip_address": vip}},
        )
    lbs = admin.ok("GET", "/v2/lbaas/loadbalancers")["loadbalancers"]
    assert all(lb["vip_address"].startswith("10.200.") for lb in lbs)
