"""Octavia API fidelity: WSME-style coercion, listing (filters, tags, sort, paging, fields),
health monitor bounds, the noop provider and provider capabilities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shoal.controller.settings import ControllerSettings

from .conftest import make_settings
from .helpers import Api

LB = "/v2/lbaas/loadbalancers"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> ControllerSettings:
    """The noop provider is off by default (enabled_providers); these tests use it."""
    return make_settings(database_url, tmp_path, enabled_providers=["shoal", "noop"])


def noop_lb(api: Api, **fields: Any) -> dict[str, Any]:
    return api.lb(provider="noop", **fields)


def names(body: dict[str, Any], key: str = "loadbalancers") -> list[str]:
    return [x["name"] for x in body[key]]


def test_noop_provider_goes_active_and_stamps_updated_at(alice: Api) -> None:
    lb = noop_lb(alice, name="n")
    got = alice.ok("GET", f"{LB}/{lb['id']}")["loadbalancer"]
    assert got["provider"] == "noop" and got["provisioning_status"] == "ACTIVE"
    assert got["updated_at"] is not None
    assert got["operating_status"] == "OFFLINE"  # nothing measures it (Octavia's noop)
    assert got["vip_port_id"]  # invented, as Octavia's noop network driver does
    # Octavia's noop accepts what the shoal provider's tiers cannot serve: UDP on the
    # default flavor, SCTP, PROMETHEUS.
    for port, proto in ((53, "UDP"), (9000, "SCTP"), (9100, "PROMETHEUS")):
        li = alice.listener(lb["id"], port, proto)
        assert (li["protocol"], li["operating_status"]) == (proto, "OFFLINE")
    providers = alice.ok("GET", "/v2/lbaas/providers")["providers"]
    assert {p["name"] for p in providers} == {"shoal", "noop"}


def test_shoal_provider_refuses_sctp_and_prometheus_as_octavia_does(alice: Api) -> None:
    lb = alice.lb(flavor_id="l4")
    for proto in ("SCTP", "PROMETHEUS"):
        body = {"listener": {"loadbalancer_id": lb["id"], "protocol": proto, "protocol_port": 9}}
        r = alice.request("POST", "/v2/lbaas/listeners", body)
        assert r.status_code == 501, r.text
        assert "Provider 'shoal' does not support a requested option" in r.json()["faultstring"]


def test_a_provider_that_is_not_enabled_is_octavias_400(alice: Api) -> None:
    # Octavia's driver_factory checks enabled_provider_drivers before loading the driver.
    r = alice.request("POST", LB, {"loadbalancer": {"provider": "amphora"}})
    assert r.status_code == 400 and r.json()["faultstring"] == "Provider 'amphora' is not enabled."


def test_numeric_strings_and_boolean_spellings_are_coerced(alice: Api) -> None:
    lb = noop_lb(alice)
    li = alice.listener(lb["id"], "80", "HTTP", connection_limit="5", admin_state_up="false")  # type: ignore[arg-type]
    assert (li["protocol_port"], li["connection_limit"], li["admin_state_up"]) == (80, 5, False)
    for bad in ("eighty", "8.5", True, [80]):
        body = {"listener": {"loadbalancer_id": lb["id"], "protocol": "TCP", "protocol_port": bad}}
        assert alice.request("POST", "/v2/lbaas/listeners", body).status_code == 400


def test_health_monitor_bounds_are_octavias(alice: Api) -> None:
    lb = noop_lb(alice)
    li = alice.listener(lb["id"], 80, "HTTP")
    pool = alice.pool(li["id"], "HTTP")
    hm = alice.monitor(pool["id"], "HTTP", delay=2, timeout=3)  # timeout > delay: accepted
    assert (hm["delay"], hm["timeout"]) == (2, 3)
    udp = alice.pool(alice.listener(lb["id"], 53, "UDP")["id"], "UDP")
    r = alice.request(
        "POST",
        "/v2/lbaas/healthmonitors",
        {
            "healthmonitor": {
                "pool_id": udp["id"],
                "type": "UDP-CONNECT",
                "delay": 2,
                "timeout": 1,
                "max_retries": 2,
            }
        },
    )
    assert r.status_code == 400 and "should be larger than 3" in r.json()["faultstring"]


def test_tag_filters(alice: Api) -> None:
    noop_lb(alice, name="a", tags=["red", "big"])
    noop_lb(alice, name="b", tags=["red"])
    noop_lb(alice, name="c", tags=["blue"])

    def listed(**params: str) -> list[str]:
        return sorted(names(alice.ok("GET", LB, **params)))

    assert listed(tags="red") == ["a", "b"]
    assert listed(tags="red,big") == ["a"]
    assert listed(**{"tags-any": "big,blue"}) == ["a", "c"]
    assert listed(**{"not-tags": "red,big"}) == ["b", "c"]
    assert listed(**{"not-tags-any": "big,blue"}) == ["b"]
    assert listed(tags="re") == []  # whole tags, not substrings


def test_unknown_filter_is_refused_not_ignored(alice: Api) -> None:
    noop_lb(alice)
    r = alice.request("GET", LB, **{"tag": "x"})  # misspelt "tags"
    assert r.status_code == 400
    assert r.json()["faultstring"] == "One or more arguments are either duplicate or invalid"
    assert alice.request("GET", LB, **{"current_config": "{}"}).status_code == 400


def test_filters_on_any_attribute_and_computed_status(alice: Api) -> None:
    noop_lb(alice, name="on")
    noop_lb(alice, name="off", admin_state_up=False)
    alice.lb(name="measured")  # noop balancers are never measured: OFFLINE, as in Octavia
    assert names(alice.ok("GET", LB, **{"operating_status": "OFFLINE"})) == ["on", "off"]
    assert names(alice.ok("GET", LB, **{"operating_status": "ONLINE"})) == ["measured"]
    assert names(alice.ok("GET", LB, **{"admin_state_up": "true"})) == ["on", "measured"]
    assert names(alice.ok("GET", LB, **{"provisioning_status": "ACTIVE", "name": "on"})) == ["on"]


def test_sort_and_paging(alice: Api) -> None:
    for n in ("b", "c", "a"):
        noop_lb(alice, name=n)
    assert names(alice.ok("GET", LB, **{"sort": "name:desc"})) == ["c", "b", "a"]
    assert names(alice.ok("GET", LB, **{"sort_key": "name", "sort_dir": "asc"})) == [
        "a",
        "b",
        "c",
    ]
    assert alice.request("GET", LB, **{"sort": "name:sideways"}).status_code == 400
    assert alice.request("GET", LB, **{"sort": "nope"}).status_code == 400
    first = alice.ok("GET", LB, **{"sort": "name", "limit": "2"})
    assert names(first) == ["a", "b"]
    (nxt,) = [link for link in first["loadbalancers_links"] if link["rel"] == "next"]
    assert "marker=" in nxt["href"] and "sort=name" in nxt["href"]
    marker = first["loadbalancers"][-1]["id"]
    second = alice.ok("GET", LB, **{"sort": "name", "limit": "2", "marker": marker})
    assert names(second) == ["c"]
    assert [link["rel"] for link in second["loadbalancers_links"]] == ["previous"]
    r = alice.request("GET", LB, **{"marker": "00000000-0000-0000-0000-000000000000"})
    assert r.status_code == 400 and "marker" in r.json()["faultstring"]


def test_fields_on_every_get(alice: Api) -> None:
    lb = noop_lb(alice, name="f")
    one = alice.ok("GET", f"{LB}/{lb['id']}", **{"fields": "id,name"})
    assert one == {"loadbalancer": {"id": lb["id"], "name": "f"}}
    many = alice.ok("GET", LB, **{"fields": "name"})
    assert many["loadbalancers"] == [{"name": "f"}]
    provs = alice.ok("GET", "/v2/lbaas/providers", **{"fields": "name"})["providers"]
    assert all(set(p) == {"name"} for p in provs)


def test_many_tags_up_to_the_limit(alice: Api) -> None:
    lb = noop_lb(alice, tags=[f"t{i}" for i in range(100)])
    assert len(lb["tags"]) == 100
    r = alice.request("POST", LB, {"loadbalancer": {"tags": [str(i) for i in range(1025)]}})
    assert r.status_code == 400


def test_provider_capabilities(admin: Api, alice: Api) -> None:
    caps = admin.ok("GET", "/v2/lbaas/providers/noop/flavor_capabilities")
    assert {c["name"] for c in caps["flavor_capabilities"]} == {"amp_image_tag"}
    az = admin.ok(
        "GET",
        "/v2/lbaas/providers/noop/availability_zone_capabilities",
        **{"name": "compute_zone"},
    )
    assert [c["name"] for c in az["availability_zone_capabilities"]] == ["compute_zone"]
    assert admin.request("GET", "/v2/lbaas/providers/nope/flavor_capabilities").status_code == 400
    assert alice.request("GET", "/v2/lbaas/providers/noop/flavor_capabilities").status_code == 403


def test_listener_ports_are_unique_per_protocol_family_as_in_octavia(alice: Api) -> None:
    """UDP, SCTP and the TCP-based protocols have separate port spaces (tempest's
    *_listener_create_on_same_port); two TCP-based listeners on one port conflict."""
    lb = noop_lb(alice)
    for proto in ("TCP", "UDP", "SCTP"):
        assert alice.listener(lb["id"], 8010, proto)["protocol"] == proto
    for proto in ("TCP", "HTTP", "UDP", "SCTP"):
        body = {"listener": {"loadbalancer_id": lb["id"], "protocol": proto, "protocol_port": 8010}}
        assert alice.request("POST", "/v2/lbaas/listeners", body).status_code == 409, proto


def test_noop_balancers_may_share_a_test_vip_but_never_a_served_one(alice: Api, bob: Api) -> None:
    a = noop_lb(alice, vip_address="2001:db8:33:33:33:33:33:33", vip_subnet_id="sub-x")
    b = noop_lb(bob, vip_address="2001:db8:33:33:33:33:33:33", vip_subnet_id="sub-x")
    assert a["vip_address"] == b["vip_address"] and a["id"] != b["id"]
    served = alice.lb(flavor_id="l4")
    body = {"loadbalancer": {"provider": "noop", "vip_address": served["vip_address"]}}
    assert bob.request("POST", LB, body).status_code == 409
    body = {"loadbalancer": {"vip_address": served["vip_address"], "flavor_id": "l4"}}
    assert bob.request("POST", LB, body).status_code == 409


def test_what_tempest_checks_after_an_update_or_a_create(alice: Api, admin: Api) -> None:
    """A member's address comes back as written; a policy's change of action clears the
    fields of the old one; flavors list by id; noop listeners take any TLS reference."""
    lb = noop_lb(alice)
    li = alice.listener(lb["id"], 80, "HTTP")
    body = {
        "pool": {"loadbalancer_id": lb["id"], "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}
    }
    pool_id = alice.ok("POST", "/v2/lbaas/pools", body, expect=201)["pool"]["id"]
    member = alice.member(
        pool_id, "2001:db8:0:0:0:0:0:1", 80, monitor_address="2001:db8:0:0:0:0:0:2"
    )
    assert member["address"] == "2001:db8:0:0:0:0:0:1"
    assert member["monitor_address"] == "2001:db8:0:0:0:0:0:2"
    dup = alice.request(
        "POST",
        f"/v2/lbaas/pools/{pool_id}/members",
        {"member": {"address": "2001:db8::1", "protocol_port": 80}},
    )
    assert dup.status_code == 409  # the same address, written otherwise
    off = alice.member(pool_id, "192.0.2.1", 81, admin_state_up=False)
    assert off["operating_status"] == "NO_MONITOR"  # Octavia's noop: nothing monitors
    body = {
        "l7policy": {
            "listener_id": li["id"],
            "action": "REDIRECT_TO_URL",
            "redirect_url": "http://localhost",
        }
    }
    policy = alice.ok("POST", "/v2/lbaas/l7policies", body, expect=201)["l7policy"]
    changed = {"l7policy": {"action": "REDIRECT_TO_POOL", "redirect_pool_id": pool_id}}
    after = alice.ok("PUT", f"/v2/lbaas/l7policies/{policy['id']}", changed)["l7policy"]
    assert (after["redirect_url"], after["redirect_pool_id"]) == (None, pool_id)
    tls = alice.listener(
        lb["id"],
        443,
        "TERMINATED_HTTPS",
        default_tls_container_ref="http://barbican.example/v1/containers/tempest",
    )
    assert tls["default_tls_container_ref"].endswith("/tempest")
    ids = [f["id"] for f in alice.ok("GET", "/v2/lbaas/flavors")["flavors"]]
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    "fields", ["id", "id,provisioning_status", "provisioning_status,project_id", "id,name"]
)
def test_a_listing_of_column_fields_is_the_full_listing_projected(
    alice: Api, bob: Api, fields: str
) -> None:
    """fields= of bare columns is answered from the columns alone (a watcher's cheap poll):
    the same objects, order, pages and filters as the full listing, and no other project's."""
    for i in range(3):
        noop_lb(alice, name=f"n{i}")  # ACTIVE
        stack = alice.l4_stack(members=2, name=f"s{i}")  # PENDING: no agent applies it
        alice.monitor(stack["pool"]["id"])
    noop_lb(bob, name="theirs")
    wanted = set(fields.split(","))
    collections = {
        LB: "loadbalancers",
        "/v2/lbaas/listeners": "listeners",
        "/v2/lbaas/pools": "pools",
        f"/v2/lbaas/pools/{stack['pool']['id']}/members": "members",
        "/v2/lbaas/healthmonitors": "healthmonitors",
        "/v2/lbaas/flavors": "flavors",
    }
    queries: list[dict[str, str]] = [
        {},
        {"provisioning_status": "ACTIVE"},
        {"provisioning_status": "PENDING_CREATE", "sort": "name:desc"},
        {"limit": "2", "sort": "name"},
    ]
    for path, key in collections.items():
        for query in queries:
            if key == "flavors" and "provisioning_status" in query:
                continue  # flavors have no provisioning status: a 400, tested elsewhere
            full = alice.ok("GET", path, **query)
            projected = [{k: v for k, v in x.items() if k in wanted} for x in full[key]]
            cheap = alice.ok("GET", path, **query, fields=fields)
            assert cheap[key] == projected, (path, query)
            assert cheap[f"{key}_links"] == full[f"{key}_links"], (path, query)
            if full[key] and "limit" in query:
                marker = {"marker": full[key][-1]["id"]}
                nxt = alice.ok("GET", path, **query, **marker)
                cheap = alice.ok("GET", path, **query, **marker, fields=fields)
                assert cheap[key] == [{k: v for k, v in x.items() if k in wanted} for x in nxt[key]]
    mine = {x["id"] for x in alice.ok("GET", LB, fields="id")["loadbalancers"]}
    theirs = {x["id"] for x in bob.ok("GET", LB, fields="id")["loadbalancers"]}
    assert len(mine) == 6 and len(theirs) == 1 and not mine & theirs
