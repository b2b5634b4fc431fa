"""VIP pools: admin-defined ranges, who may use them, and allocation from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shoal.controller.app import create_app
from shoal.controller.settings import ControllerSettings, load_settings
from shoal.errors import ConfigError

from .conftest import make_settings
from .helpers import ADMIN_SECRET, Api

LB_PATH = "/v2/lbaas/loadbalancers"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> ControllerSettings:
    """The noop provider is off by default (enabled_providers); these tests use it."""
    return make_settings(database_url, tmp_path, enabled_providers=["shoal", "noop"])


def _pool(admin: Api, name: str, cidr: str, **fields: object) -> dict:
    body = {"vip_pool": {"name": name, "cidr": cidr, **fields}}
    pool: dict = admin.ok("POST", "/v2/shoal/vip-pools", body, expect=201)["vip_pool"]
    return pool


def test_admin_defines_pools_and_tenants_see_theirs(admin: Api, alice: Api, bob: Api) -> None:
    own = _pool(admin, "alpha-v6", "fd00:a::/64", project_ids=["alpha"])
    assert own["ip_version"] == 6 and own["network_id"] == own["id"] and not own["shared"]
    assert len(own["id"]) == 36
    names = {p["name"] for p in alice.ok("GET", "/v2/shoal/vip-pools")["vip_pools"]}
    assert names == {"default", "alpha-v6"}
    assert all("project_ids" not in p for p in alice.ok("GET", "/v2/shoal/vip-pools")["vip_pools"])
    assert {p["name"] for p in bob.ok("GET", "/v2/shoal/vip-pools")["vip_pools"]} == {"default"}
    assert bob.request("GET", f"/v2/shoal/vip-pools/{own['id']}").status_code == 404
    assert alice.ok("GET", "/v2/shoal/vip-pools/alpha-v6")["vip_pool"]["id"] == own["id"]
    assert admin.ok("GET", f"/v2/shoal/vip-pools/{own['id']}")["vip_pool"]["project_ids"] == [
        "alpha"
    ]
    r = alice.request(
        "POST", "/v2/shoal/vip-pools", {"vip_pool": {"name": "x", "cidr": "10.9.0.0/24"}}
    )
    assert r.status_code == 403
    r = alice.request("DELETE", f"/v2/shoal/vip-pools/{own['id']}")
    assert r.status_code == 403


def test_allocation_follows_the_pool_and_the_project(admin: Api, alice: Api, bob: Api) -> None:
    own = _pool(admin, "alpha-v6", "fd00:a::/64", project_ids=["alpha"])
    lb = alice.lb(vip_subnet_id=own["id"], flavor_id="l4")
    assert lb["vip_address"] == "fd00:a::1" and lb["vip_subnet_id"] == own["id"]
    assert alice.lb(vip_subnet_id="alpha-v6", flavor_id="l4")["vip_address"] == "fd00:a::2"
    given = alice.lb(vip_address="fd00:a::99", flavor_id="l4")
    assert given["vip_subnet_id"] == own["id"]
    # A project with a pool of its own allocates from it first.
    assert alice.lb(flavor_id="l4")["vip_address"] == "fd00:a::3"
    assert bob.lb(flavor_id="l4")["vip_address"] == "10.200.0.1"
    r = bob.request(
        "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": own["id"]}}
    )
    assert r.status_code == 400 and "default" in r.json()["faultstring"]
    # Taking alpha off the pool stops new VIPs from it; the ones it holds stay.
    admin.ok("PUT", f"/v2/shoal/vip-pools/{own['id']}", {"vip_pool": {"project_ids": ["gamma"]}})
    r = alice.request(
        "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": own["id"]}}
    )
    assert r.status_code == 400
    assert alice.get_lb(lb["id"])["vip_address"] == "fd00:a::1"


@pytest.mark.parametrize(
    "cidr",
    [
        "127.0.0.0/8",
        "0.0.0.0/0",
        "224.0.0.0/24",
        "169.254.0.0/16",
        "240.0.0.0/8",
        "::/0",
        "fe80::/64",
        "ff02::/16",
        "::ffff:0:0/96",
        "10.0.0.1/24",
        "not-a-prefix",
    ],
)
def test_pools_of_special_ranges_are_refused(admin: Api, cidr: str) -> None:
    r = admin.request("POST", "/v2/shoal/vip-pools", {"vip_pool": {"name": "bad", "cidr": cidr}})
    assert r.status_code == 400, r.text
    assert r.json()["faultstring"].startswith("Invalid input for field/attribute cidr")
    assert [p["name"] for p in admin.ok("GET", "/v2/shoal/vip-pools")["vip_pools"]] == ["default"]


def test_overlaps_names_and_pools_in_use_conflict(admin: Api, alice: Api) -> None:
    r = admin.request(
        "POST", "/v2/shoal/vip-pools", {"vip_pool": {"name": "inner", "cidr": "10.200.5.0/24"}}
    )
    assert r.status_code == 409 and "overlaps VIP pool default" in r.json()["faultstring"]
    r = admin.request(
        "POST", "/v2/shoal/vip-pools", {"vip_pool": {"name": "default", "cidr": "10.9.0.0/24"}}
    )
    assert r.status_code == 409
    small = _pool(admin, "small", "10.9.0.0/30", shared=True)
    lbs = [alice.lb(vip_subnet_id="small", flavor_id="l4") for _ in range(2)]
    assert [lb["vip_address"] for lb in lbs] == ["10.9.0.1", "10.9.0.2"]
    r = alice.request(
        "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "small"}}
    )
    assert r.status_code == 409 and "no free address" in r.json()["faultstring"]
    for edge in ("10.9.0.0", "10.9.0.3"):
        r = alice.request(
            "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_address": edge}}
        )
        assert r.status_code == 400 and "broadcast" in r.json()["faultstring"]
    r = admin.request("DELETE", f"/v2/shoal/vip-pools/{small['id']}")
    assert r.status_code == 409
    for lb in lbs:
        alice.ok("DELETE", f"/v2/lbaas/loadbalancers/{lb['id']}")
    admin.ok("DELETE", f"/v2/shoal/vip-pools/{small['id']}")
    assert admin.request("GET", f"/v2/shoal/vip-pools/{small['id']}").status_code == 404


def test_settings_seed_an_empty_database_only(database_url: str, tmp_path: Path) -> None:
    pools = [
        {"name": "edge", "cidr": "203.0.113.0/24"},
        {"name": "b", "cidr": "10.5.0.0/24", "project_ids": ["alpha"]},
    ]
    settings = make_settings(database_url, tmp_path, vip_pools=pools)
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        admin = Api(c, ADMIN_SECRET)
        seeded = {p["name"]: p for p in admin.ok("GET", "/v2/shoal/vip-pools")["vip_pools"]}
        assert set(seeded) == {"edge", "b"}
        assert seeded["edge"]["shared"] and not seeded["b"]["shared"]
        admin.ok("DELETE", f"/v2/shoal/vip-pools/{seeded['edge']['id']}")
    with TestClient(
        create_app(settings), base_url="https://testserver"
    ) as c:  # a restart: the database is the truth
        names = [
            p["name"] for p in Api(c, ADMIN_SECRET).ok("GET", "/v2/shoal/vip-pools")["vip_pools"]
        ]
        assert names == ["b"]
    # Seeded ids are stable: another controller seeding the same settings agrees on them.
    from shoal.controller.services.vips import stable_id

    assert seeded["b"]["id"] == stable_id("b")


@pytest.mark.parametrize("cidr", ["127.0.0.0/8", "0.0.0.0/0", "fe80::/10"])
def test_settings_refuse_special_pools(cidr: str) -> None:
    with pytest.raises(ConfigError, match="vip_pools"):
        load_settings(vip_pools=[{"name": "x", "cidr": cidr}])


def test_an_upgraded_database_keeps_its_load_balancers_in_the_seeded_pool(
    database_url: str, tmp_path: Path
) -> None:
    from alembic import command
    from sqlalchemy import create_engine, text

    from shoal.controller.db.migrate import alembic_config

    command.upgrade(alembic_config(database_url), "0003")
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO load_balancers (id, project_id, name, admin_state_up,"
                " provisioning_status, tags, created_at, description, kind, provider,"
                " vip_address, vip_subnet_id, revision, revision_seq, current_config) VALUES"
                " ('lb1', 'alpha', 'old', true, 'ACTIVE', '[]', '2026-01-01 00:00:00', '',"
                " 'l4', 'shoal', '10.200.0.1', 'default', 0, 0, '{}')"
            )
        )
    engine.dispose()
    with TestClient(
        create_app(make_settings(database_url, tmp_path)), base_url="https://testserver"
    ) as c:
        admin = Api(c, ADMIN_SECRET)
        assert [p["name"] for p in admin.ok("GET", "/v2/shoal/vip-pools")["vip_pools"]] == [
            "default"
        ]
        # The old row names its pool by name: the pool is in use, and its VIP is taken.
        assert admin.request("DELETE", "/v2/shoal/vip-pools/default").status_code == 409
        assert admin.lb(flavor_id="l4")["vip_address"] == "10.200.0.2"


def test_members_and_pools_never_share_addresses(admin: Api, alice: Api) -> None:
    stack = alice.l4_stack(members=1)  # member 10.1.0.1
    pool_id, lb_id = stack["pool"]["id"], stack["lb"]["id"]
    r = admin.request(
        "POST", "/v2/shoal/vip-pools", {"vip_pool": {"name": "over", "cidr": "10.1.0.0/24"}}
    )
    assert r.status_code == 409 and stack["members"][0]["id"] in r.json()["faultstring"]
    # A rollback cannot bring back a member that has since come to lie in a VIP pool.
    alice.member(pool_id, "10.9.0.5")
    revs = alice.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions")["revisions"]
    target = max(r["number"] for r in revs)
    member = next(
        m
        for m in alice.ok("GET", f"/v2/lbaas/pools/{pool_id}/members")["members"]
        if m["address"] == "10.9.0.5"
    )
    alice.ok("DELETE", f"/v2/lbaas/pools/{pool_id}/members/{member['id']}")
    _pool(admin, "later", "10.9.0.0/24", shared=True)
    r = alice.request("POST", f"/v2/shoal/loadbalancers/{lb_id}/revisions/{target}/rollback")
    assert r.status_code == 400, r.text
    assert "10.9.0.5:80" in r.json()["faultstring"] and "VIP pool later" in r.json()["faultstring"]


def test_a_network_groups_pools(admin: Api, alice: Api) -> None:
    net = "7b0d6c1e-0000-4000-8000-00000000a001"
    v4 = _pool(admin, "pub4", "203.0.113.0/24", network_id=net, shared=True)
    v6 = _pool(admin, "pub6", "2001:db8:100::/64", network_id=net, shared=True)
    lb = alice.lb(vip_network_id=net, flavor_id="l4")
    assert (lb["vip_address"], lb["vip_subnet_id"], lb["vip_network_id"]) == (
        "203.0.113.1",
        v4["id"],
        net,
    )
    lb6 = alice.lb(vip_network_id=net, vip_address="2001:db8:100::50", flavor_id="l4")
    assert lb6["vip_subnet_id"] == v6["id"]
    # Without a network, the pool's own network is shown, as Neutron would.
    plain = alice.lb(flavor_id="l4")
    default = alice.ok("GET", "/v2/shoal/vip-pools/default")["vip_pool"]
    assert plain["vip_network_id"] == default["network_id"]
    for body in (
        {"vip_network_id": "no-such-network"},
        {"vip_network_id": net, "vip_subnet_id": "default"},
        {"vip_network_id": net, "vip_address": "10.200.0.9"},
    ):
        r = alice.request("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": body})
        assert r.status_code == 400, (body, r.text)


def test_noop_takes_an_unknown_subnet_as_given_but_never_another_projects_vip(
    admin: Api, alice: Api, bob: Api
) -> None:
    """As Octavia's noop network driver, the noop provider takes a subnet and network that
    name no pool (tempest invents them); the VIP rules that protect other tenants still hold."""
    own = _pool(admin, "alpha-v6", "fd00:a::/64", project_ids=["alpha"])
    fake = {"provider": "noop", "vip_subnet_id": "sub-tempest", "vip_network_id": "net-tempest"}
    lb = bob.lb(vip_address="198.18.33.33", **fake)
    assert (lb["vip_subnet_id"], lb["vip_network_id"]) == ("sub-tempest", "net-tempest")
    assert bob.lb(**fake)["vip_address"] == "10.200.0.1"  # no address: the project's pool
    # Noop balancers configure nothing: they may repeat each other's VIP (tempest's fixed
    # test addresses), never a serving balancer's.
    assert bob.lb(vip_address="198.18.33.33", **fake)["vip_address"] == "198.18.33.33"
    served = bob.lb(flavor_id="l4")["vip_address"]
    for address, status in (
        (served, 409),  # a serving balancer's
        ("fd00:a::5", 400),  # alpha's pool
        ("127.0.0.1", 400),  # never a VIP
    ):
        r = bob.request("POST", LB_PATH, {"loadbalancer": {"vip_address": address, **fake}})
        assert r.status_code == status, r.text
    # A subnet that names a pool follows the pool rules, noop or not.
    r = bob.request(
        "POST", LB_PATH, {"loadbalancer": {"provider": "noop", "vip_subnet_id": own["id"]}}
    )
    assert r.status_code == 400, r.text
    # The shoal provider never takes an unknown subnet.
    r = bob.request("POST", LB_PATH, {"loadbalancer": {**fake, "provider": "shoal"}})
    assert r.status_code == 400, r.text


def test_a_released_vip_is_the_lowest_free_again_and_a_full_pool_says_so(
    admin: Api, alice: Api
) -> None:
    """Allocation starts where the pool's taken hosts end (no scan of every VIP): a deleted
    load balancer's address is the next one given, a given address is skipped over."""
    _pool(admin, "small", "10.77.0.0/29", project_ids=["alpha"])  # hosts .1 to .6
    lbs = [alice.lb(flavor_id="l4") for _ in range(3)]
    assert [lb["vip_address"] for lb in lbs] == ["10.77.0.1", "10.77.0.2", "10.77.0.3"]
    assert alice.lb(vip_address="10.77.0.5", flavor_id="l4")["vip_address"] == "10.77.0.5"
    alice.ok("DELETE", f"{LB_PATH}/{lbs[1]['id']}", expect=204)  # no node: gone at once
    assert alice.request("GET", f"{LB_PATH}/{lbs[1]['id']}").status_code == 404
    assert alice.lb(flavor_id="l4")["vip_address"] == "10.77.0.2"
    assert alice.lb(flavor_id="l4")["vip_address"] == "10.77.0.4"
    assert alice.lb(flavor_id="l4")["vip_address"] == "10.77.0.6"
    r = alice.request("POST", LB_PATH, {"loadbalancer": {"flavor_id": "l4"}})
    assert r.status_code == 409 and "has no free address" in r.json()["faultstring"]
    alice.ok("DELETE", f"{LB_PATH}/{lbs[0]['id']}", expect=204)
    assert alice.lb(flavor_id="l4")["vip_address"] == "10.77.0.1"
