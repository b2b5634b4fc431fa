"""Node enrolment: an admin's credential for one node, shown once, rotated and revoked."""

from __future__ import annotations

import time

from .helpers import Api


def enroll(admin: Api, name: str = "l4-a", **fields: object) -> dict:
    body = {"enrollment": {"name": name, "role": "l4", **fields}}
    return admin.ok("POST", "/v2/shoal/enrollments", body, expect=201)["enrollment"]


def can_register(admin: Api, secret: str, name: str = "l4-a") -> int:
    r = admin.with_token(secret).request("POST", "/v2/shoal/nodes", {"name": name, "role": "l4"})
    return r.status_code


def test_enrolment_shows_the_credential_once(admin: Api, alice: Api) -> None:
    got = enroll(admin, cluster="c1", address="192.0.2.9")
    assert got["credential"].startswith("shoalnode_") and got["status"] == "ACTIVE"
    listed = admin.ok("GET", "/v2/shoal/enrollments")["enrollments"]
    assert [e["name"] for e in listed] == ["l4-a"] and "credential" not in listed[0]
    assert "credential" not in admin.ok("GET", "/v2/shoal/enrollments/l4-a")["enrollment"]
    r = admin.request(
        "POST", "/v2/shoal/enrollments", {"enrollment": {"name": "l4-a", "role": "l4"}}
    )
    assert r.status_code == 409 and "already enrolled" in r.json()["faultstring"]
    body = {"enrollment": {"name": "l7-a", "role": "l7"}}
    r = admin.request("POST", "/v2/shoal/enrollments", body)
    assert r.status_code == 400 and "data_address" in r.json()["faultstring"]
    assert alice.request("GET", "/v2/shoal/enrollments").status_code == 403
    assert alice.request("POST", "/v2/shoal/enrollments", body).status_code == 403
    r = admin.request(
        "POST", "/v2/shoal/enrollments", {"enrollment": {"name": "a b", "role": "l4"}}
    )
    assert r.status_code == 400
    node = admin.with_token(got["credential"]).ok(
        "POST", "/v2/shoal/nodes", {"name": "l4-a", "role": "l4", "cluster": "c1"}, expect=201
    )["node"]
    assert node["address"] == "192.0.2.9" and node["cluster"] == "c1"


def test_revocation_is_immediate_and_the_name_can_be_enrolled_again(admin: Api) -> None:
    first = enroll(admin)["credential"]
    assert can_register(admin, first) == 201
    admin.ok("DELETE", "/v2/shoal/enrollments/l4-a")
    assert can_register(admin, first) == 401
    assert admin.ok("GET", "/v2/shoal/enrollments/l4-a")["enrollment"]["status"] == "REVOKED"
    r = admin.request("POST", "/v2/shoal/enrollments/l4-a/rotate")
    assert r.status_code == 409
    second = enroll(admin)["credential"]
    assert can_register(admin, second) == 201 and can_register(admin, first) == 401
    assert admin.request("DELETE", "/v2/shoal/enrollments/nobody").status_code == 404
    kinds = [e["kind"] for e in admin.ok("GET", "/v2/shoal/events")["events"]]
    assert "credential_revoked" in kinds and kinds.count("node_enrolled") == 2


def test_rotation_with_and_without_grace(admin: Api) -> None:
    old = enroll(admin)["credential"]
    new = admin.ok("POST", "/v2/shoal/enrollments/l4-a/rotate", {"grace_seconds": 1})
    newer = new["enrollment"]["credential"]
    assert new["enrollment"]["previous_valid_until"] is not None
    assert can_register(admin, old) == 201 and can_register(admin, newer) == 201
    time.sleep(1.2)
    assert can_register(admin, old) == 401 and can_register(admin, newer) == 201
    latest = admin.ok("POST", "/v2/shoal/enrollments/l4-a/rotate")["enrollment"]["credential"]
    assert can_register(admin, newer) == 401 and can_register(admin, latest) == 201


def test_an_enrolled_name_keeps_its_role(admin: Api) -> None:
    secret = enroll(admin)["credential"]
    assert can_register(admin, secret) == 201
    admin.ok("DELETE", "/v2/shoal/enrollments/l4-a")
    body = {"enrollment": {"name": "l4-a", "role": "l7", "data_address": "10.9.0.1"}}
    r = admin.request("POST", "/v2/shoal/enrollments", body)
    assert r.status_code == 409 and "delete it" in r.json()["faultstring"]
