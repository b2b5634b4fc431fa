"""A listener's allowed_cidrs: valid prefixes of the VIP's family are stored and reach the L4
tier's translation; another family or an invalid prefix is a 400 and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.wire.l4 import l4_vips

from .helpers import Api


def _trace(api: Api, lb_id: str, source: str) -> dict[str, Any]:
    return api.ok(
        "POST",
        f"/v2/shoal/loadbalancers/{lb_id}/flow-trace",
        {"source_ip": source, "source_port": 1234, "protocol_port": 80},
    )["flow_trace"]


def test_prefixes_are_stored_canonical_and_enforced_by_the_trace(alice: Api) -> None:
    lb = alice.lb(flavor_id="l4")
    li = alice.listener(lb["id"], allowed_cidrs=["192.0.2.77/24", "198.51.100.0/24"])
    assert sorted(li["allowed_cidrs"]) == ["192.0.2.0/24", "198.51.100.0/24"]
    pool = alice.pool(li["id"])
    alice.member(pool["id"], "10.1.0.1")
    assert _trace(alice, lb["id"], "192.0.2.9")["verdict"] == "forward"
    denied = _trace(alice, lb["id"], "203.0.113.9")
    assert denied == {"verdict": "drop: source not in allowed_cidrs", "listener_id": li["id"]}


@pytest.mark.parametrize(
    "cidrs", [["2001:db8::/32"], ["192.0.2.0/24", "::/0"], ["::ffff:192.0.2.0/120"]]
)
def test_a_prefix_of_the_other_family_is_refused(alice: Api, cidrs: list[str]) -> None:
    lb = alice.lb(flavor_id="l4")
    body = {"listener": {"loadbalancer_id": lb["id"], "protocol": "TCP", "protocol_port": 80}}
    r = alice.request(
        "POST", "/v2/lbaas/listeners", {"listener": {**body["listener"], "allowed_cidrs": cidrs}}
    )
    assert r.status_code == 400, r.text
    fault = r.json()["faultstring"]
    assert fault.startswith("Validation failure: CIDR ") and "IP version incompatible" in fault
    assert alice.ok("GET", "/v2/lbaas/listeners")["listeners"] == []


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "banana", "", "192.0.2.0/24\x00", 7])
def test_invalid_prefixes_are_refused(alice: Api, bad: object) -> None:
    lb = alice.lb(flavor_id="l4")
    li = alice.listener(lb["id"], allowed_cidrs=["192.0.2.0/24"])
    r = alice.request(
        "PUT", f"/v2/lbaas/listeners/{li['id']}", {"listener": {"allowed_cidrs": [bad]}}
    )
    assert r.status_code == 400, r.text
    stored = alice.ok("GET", f"/v2/lbaas/listeners/{li['id']}")["listener"]
    assert stored["allowed_cidrs"] == ["192.0.2.0/24"]


def test_an_update_to_the_other_family_changes_nothing(alice: Api) -> None:
    lb = alice.lb(flavor_id="l4")
    li = alice.listener(lb["id"], allowed_cidrs=["192.0.2.0/24"])
    r = alice.request(
        "PUT", f"/v2/lbaas/listeners/{li['id']}", {"listener": {"allowed_cidrs": ["2001:db8::/48"]}}
    )
    assert r.status_code == 400
    stored = alice.ok("GET", f"/v2/lbaas/listeners/{li['id']}")["listener"]
    assert stored["allowed_cidrs"] == ["192.0.2.0/24"]


def test_the_translation_carries_the_list() -> None:
    config = {
        "kind": "l4",
        "vip_address": "10.0.0.1",
        "admin_state_up": True,
        "pools": [],
        "listeners": [
            {
                "id": "l1",
                "protocol": "TCP",
                "protocol_port": 80,
                "admin_state_up": True,
                "default_pool_id": None,
                "allowed_cidrs": ["192.0.2.0/24"],
            },
            {
                "id": "l2",
                "protocol": "UDP",
                "protocol_port": 53,
                "admin_state_up": True,
                "default_pool_id": None,
                "allowed_cidrs": None,
            },
        ],
    }
    vips = {v.listener_id: v.spec for v in l4_vips(config, {})}
    assert [str(n) for n in vips["l1"].allowed_cidrs or []] == ["192.0.2.0/24"]
    assert vips["l2"].allowed_cidrs is None
