"""Flavor profiles, flavors, availability zone profiles and zones: admin-only writes, metadata
validated against the provider's capabilities, in-use objects kept, load balancers that take
their provider and kind from the flavor; and the noop provider off unless enabled."""

from __future__ import annotations

import json
from typing import Any

from .helpers import Api

FP = "/v2/lbaas/flavorprofiles"
FL = "/v2/lbaas/flavors"
AZP = "/v2/lbaas/availabilityzoneprofiles"
AZ = "/v2/lbaas/availabilityzones"
LB = "/v2/lbaas/loadbalancers"


def profile(admin: Api, data: dict[str, Any], provider: str = "shoal") -> dict[str, Any]:
    body = {
        "flavorprofile": {"name": "p", "provider_name": provider, "flavor_data": json.dumps(data)}
    }
    made: dict[str, Any] = admin.ok("POST", FP, body, expect=201)["flavorprofile"]
    return made


def test_built_in_flavors_are_rows_that_profiles_describe(admin: Api, alice: Api) -> None:
    listed = alice.ok("GET", FL)["flavors"]
    assert {f["name"] for f in listed} == {"l4", "l7"}
    l4 = next(f for f in listed if f["name"] == "l4")
    assert alice.ok("GET", f"{FL}/{l4['id']}")["flavor"] == l4
    assert alice.ok("GET", f"{FL}?name=l7&fields=name")["flavors"] == [{"name": "l7"}]
    shown = admin.ok("GET", f"{FP}/{l4['flavor_profile_id']}")["flavorprofile"]
    assert (shown["provider_name"], json.loads(shown["flavor_data"])) == ("shoal", {"kind": "l4"})


def test_only_admins_touch_profiles_and_write_flavors(admin: Api, alice: Api) -> None:
    body = {"flavorprofile": {"name": "x", "provider_name": "shoal", "flavor_data": "{}"}}
    assert alice.request("POST", FP, body).status_code == 403
    assert alice.request("GET", FP).status_code == 403
    made = profile(admin, {"kind": "l4"})
    assert alice.request("GET", f"{FP}/{made['id']}").status_code == 403
    flavor = {"flavor": {"name": "fast", "flavor_profile_id": made["id"]}}
    assert alice.request("POST", FL, flavor).status_code == 403
    assert admin.request("POST", FL, flavor).status_code == 201
    assert alice.request("PUT", f"{FL}/fast", {"flavor": {"enabled": False}}).status_code == 403
    assert alice.request("DELETE", f"{FL}/fast").status_code == 403
    zp = {"name": "z", "provider_name": "shoal", "availability_zone_data": "{}"}
    assert alice.request("POST", AZP, {"availability_zone_profile": zp}).status_code == 403


def test_flavor_data_is_validated_against_the_providers_capabilities(admin: Api) -> None:
    def create(provider: str, data: str) -> Any:
        body = {"flavorprofile": {"name": "p", "provider_name": provider, "flavor_data": data}}
        return admin.request("POST", FP, body)

    r = create("shoal", "not json")
    assert r.status_code == 400 and "is not a valid option for flavor_data" in r.text
    assert create("shoal", "[1]").status_code == 400
    r = create("shoal", json.dumps({"amp_image_tag": "x"}))
    assert r.status_code == 501
    assert "Provider 'shoal' does not support a requested option" in r.json()["faultstring"]
    assert create("shoal", json.dumps({"kind": "l9"})).status_code == 501
    # noop is not enabled here: Octavia's 400.
    r = create("noop", "{}")
    assert r.status_code == 400 and r.json()["faultstring"] == "Provider 'noop' is not enabled."


def test_profiles_in_use_stay_and_flavors_in_use_stay(admin: Api, alice: Api) -> None:
    made = profile(admin, {"kind": "l4"})
    flavor = admin.ok(
        "POST", FL, {"flavor": {"name": "edge", "flavor_profile_id": made["id"]}}, expect=201
    )["flavor"]
    changed = {"flavorprofile": {"flavor_data": json.dumps({"kind": "l7"})}}
    r = admin.request("PUT", f"{FP}/{made['id']}", changed)
    assert r.status_code == 409 and "is in use" in r.json()["faultstring"]
    renamed = admin.ok("PUT", f"{FP}/{made['id']}", {"flavorprofile": {"name": "renamed"}})
    assert renamed["flavorprofile"]["name"] == "renamed"
    assert admin.request("DELETE", f"{FP}/{made['id']}").status_code == 409

    lb = alice.lb(flavor_id=flavor["id"])
    assert (lb["flavor_id"], lb["provider"]) == (flavor["id"], "shoal")
    # The profile said l4: an HTTP listener is refused as on any L4 load balancer.
    body = {"listener": {"loadbalancer_id": lb["id"], "protocol": "HTTP", "protocol_port": 80}}
    assert alice.request("POST", "/v2/lbaas/listeners", body).status_code == 501
    assert admin.request("DELETE", f"{FL}/{flavor['id']}").status_code == 409


def test_disabled_and_mismatched_flavors_are_refused(admin: Api, alice: Api) -> None:
    made = profile(admin, {"kind": "l7"})
    admin.ok("POST", FL, {"flavor": {"name": "off", "flavor_profile_id": made["id"]}}, expect=201)
    admin.ok("PUT", f"{FL}/off", {"flavor": {"enabled": False}})
    r = alice.request("POST", LB, {"loadbalancer": {"flavor_id": "off"}})
    assert r.status_code == 400 and "not allowed in this deployment" in r.text
    # A flavor of shoal's asked for with another provider (the built-in flavors excepted: noop
    # stands in for shoal in API tests and takes them for their kind).
    admin.ok("POST", FL, {"flavor": {"name": "own", "flavor_profile_id": made["id"]}}, expect=201)
    r = alice.request("POST", LB, {"loadbalancer": {"flavor_id": "own", "provider": "noop"}})
    assert r.status_code == 400 and "is not compatible with provider 'noop'" in r.text
    r = alice.request("POST", LB, {"loadbalancer": {"flavor_id": "nope"}})
    assert r.status_code == 400 and "Invalid flavor_id" in r.text
    r = admin.request("POST", FL, {"flavor": {"name": "x", "flavor_profile_id": "missing"}})
    assert r.status_code == 400
    dup = admin.request("POST", FL, {"flavor": {"name": "l4", "flavor_profile_id": made["id"]}})
    assert dup.status_code == 409


def test_availability_zones_validate_and_are_required_to_exist(admin: Api, alice: Api) -> None:
    def zone_profile(data: dict[str, Any]) -> Any:
        body = {
            "availability_zone_profile": {
                "name": "zp",
                "provider_name": "shoal",
                "availability_zone_data": json.dumps(data),
            }
        }
        return admin.request("POST", AZP, body)

    assert zone_profile({"compute_zone": "nova"}).status_code == 501
    zp = zone_profile({"cluster": "a"})
    assert zp.status_code == 201
    zp_id = zp.json()["availability_zone_profile"]["id"]
    zone = {"availability_zone": {"name": "az1", "availability_zone_profile_id": zp_id}}
    assert alice.request("POST", AZ, zone).status_code == 403
    made = admin.ok("POST", AZ, zone, expect=201)["availability_zone"]
    assert made == {
        "name": "az1",
        "description": "",
        "enabled": True,
        "availability_zone_profile_id": zp_id,
    }
    assert alice.ok("GET", f"{AZ}/az1")["availability_zone"] == made
    assert [z["name"] for z in alice.ok("GET", AZ)["availability_zones"]] == ["az1"]
    r = alice.request("POST", LB, {"loadbalancer": {"availability_zone": "az9"}})
    assert r.status_code == 400 and "Invalid availability zone" in r.text
    lb = alice.lb(availability_zone="az1")
    assert lb["availability_zone"] == "az1"
    assert admin.request("DELETE", f"{AZ}/az1").status_code == 409
    assert admin.request("DELETE", f"{AZP}/{zp_id}").status_code == 409
    admin.ok("PUT", f"{AZ}/az1", {"availability_zone": {"enabled": False}})
    r = alice.request("POST", LB, {"loadbalancer": {"availability_zone": "az1"}})
    assert r.status_code == 400 and "not allowed in this deployment" in r.text
    assert admin.request("GET", f"{AZ}/nope").status_code == 404


def test_noop_is_refused_to_tenants_unless_enabled(alice: Api) -> None:
    providers = alice.ok("GET", "/v2/lbaas/providers")["providers"]
    assert [p["name"] for p in providers] == ["shoal"]
    r = alice.request("POST", LB, {"loadbalancer": {"provider": "noop"}})
    assert r.status_code == 400 and r.json()["faultstring"] == "Provider 'noop' is not enabled."
