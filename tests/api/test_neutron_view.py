"""The read-only Neutron view of VIP pools (/v2.0/networks, /v2.0/subnets, /v2.0/ports) that
OpenStack clients resolve --vip-subnet-id and --vip-network-id through."""

from __future__ import annotations

from typing import Any

from .helpers import Api


def _pool(admin: Api, name: str, cidr: str, **fields: object) -> dict[str, Any]:
    body = {"vip_pool": {"name": name, "cidr": cidr, **fields}}
    pool: dict[str, Any] = admin.ok("POST", "/v2/shoal/vip-pools", body, expect=201)["vip_pool"]
    return pool


def test_subnets_resolve_by_id_and_name_as_the_clients_ask(alice: Api) -> None:
    (default,) = alice.ok("GET", "/v2.0/subnets")["subnets"]
    assert default["name"] == "default" and default["cidr"] == "10.200.0.0/16"
    assert default["ip_version"] == 4 and default["network_id"] == default["id"]
    assert default["allocation_pools"] == [{"start": "10.200.0.1", "end": "10.200.255.254"}]
    # What openstacksdk's find/list sends: ?id=X, then ?name=X.
    assert alice.ok("GET", f"/v2.0/subnets?id={default['id']}")["subnets"] == [default]
    assert alice.ok("GET", "/v2.0/subnets?name=default")["subnets"] == [default]
    assert alice.ok("GET", "/v2.0/subnets?name=nothing")["subnets"] == []
    assert alice.ok("GET", f"/v2.0/subnets/{default['id']}")["subnet"] == default
    only = alice.ok("GET", "/v2.0/subnets?fields=id&fields=cidr")["subnets"]
    assert only == [{"id": default["id"], "cidr": "10.200.0.0/16"}]
    (network,) = alice.ok("GET", "/v2.0/networks?name=default")["networks"]
    assert network["id"] == default["network_id"] and network["subnets"] == [default["id"]]
    assert alice.ok("GET", f"/v2.0/networks/{network['id']}")["network"] == network
    by_net = alice.ok("GET", f"/v2.0/subnets?network_id={network['id']}")["subnets"]
    assert by_net == [default]


def test_unknown_ids_and_filters_answer_as_neutron(alice: Api) -> None:
    r = alice.request("GET", "/v2.0/subnets/5e1f00d0-0000-4000-8000-000000000000")
    assert r.status_code == 404
    assert r.json()["NeutronError"]["type"] == "SubnetNotFound"
    assert alice.request("GET", "/v2.0/networks/nope").json()["NeutronError"]["type"] == (
        "NetworkNotFound"
    )
    # A misspelt filter must not list everything.
    r = alice.request("GET", "/v2.0/subnets?nmae=default")
    assert r.status_code == 400 and "nmae" in r.json()["NeutronError"]["message"]
    assert alice.request("GET", "/v2.0/subnets").headers["x-openstack-request-id"]


def test_a_tenant_cannot_see_another_projects_pool(admin: Api, alice: Api, bob: Api) -> None:
    """The attacker (bob, project beta) probes for alpha's private pool every way the view
    answers: list, filters, show, its network, and the VIP port of alpha's balancer."""
    private = _pool(admin, "alpha-only", "10.77.0.0/24", project_ids=["alpha"])
    lb = alice.lb(vip_subnet_id="alpha-only", flavor_id="l4")
    assert private["id"] in {s["id"] for s in alice.ok("GET", "/v2.0/subnets")["subnets"]}
    (shown,) = alice.ok("GET", "/v2.0/subnets?name=alpha-only")["subnets"]
    assert shown["project_id"] == "alpha" and shown["shared"] is False

    seen = bob.ok("GET", "/v2.0/subnets")["subnets"]
    assert [s["name"] for s in seen] == ["default"]
    for query in (f"id={private['id']}", "name=alpha-only", "cidr=10.77.0.0/24"):
        assert bob.ok("GET", f"/v2.0/subnets?{query}")["subnets"] == []
    assert bob.request("GET", f"/v2.0/subnets/{private['id']}").status_code == 404
    assert bob.request("GET", f"/v2.0/networks/{private['network_id']}").status_code == 404
    assert bob.ok("GET", "/v2.0/ports")["ports"] == []
    (vip_port,) = alice.ok("GET", "/v2.0/ports")["ports"]
    assert vip_port["fixed_ips"] == [{"subnet_id": private["id"], "ip_address": lb["vip_address"]}]
    assert bob.request("GET", f"/v2.0/ports/{vip_port['id']}").status_code == 404
    # Nor do the shared pool's answers name the projects that own other pools.
    assert "alpha" not in str(bob.ok("GET", "/v2.0/networks"))
    # Admins see every pool and port; nobody unauthenticated sees anything.
    names = {s["name"] for s in admin.ok("GET", "/v2.0/subnets")["subnets"]}
    assert names == {"default", "alpha-only"}
    assert admin.ok("GET", f"/v2.0/ports/{vip_port['id']}")["port"]["device_owner"] == "Octavia"
    assert alice.with_token("made-up").request("GET", "/v2.0/subnets").status_code == 401


def test_a_network_groups_its_pools(admin: Api, alice: Api) -> None:
    v4 = _pool(admin, "dual-v4", "10.78.0.0/24", shared=True)
    v6 = _pool(admin, "dual-v6", "fd00:78::/64", shared=True, network_id=v4["id"])
    (network,) = alice.ok("GET", f"/v2.0/networks?id={v4['id']}")["networks"]
    assert sorted(network["subnets"]) == sorted([v4["id"], v6["id"]])
    listed = alice.ok("GET", "/v2.0/subnets?sort_key=name&sort_dir=desc")["subnets"]
    assert [s["name"] for s in listed] == ["dual-v6", "dual-v4", "default"]
    page = alice.ok("GET", "/v2.0/subnets?sort_key=name&limit=1")["subnets"]
    assert [s["name"] for s in page] == ["default"]
    after = alice.ok("GET", f"/v2.0/subnets?sort_key=name&limit=5&marker={page[0]['id']}")
    assert [s["name"] for s in after["subnets"]] == ["dual-v4", "dual-v6"]
