"""Keystone authentication played by an attacker: made-up, expired and oversized tokens,
floods of them, Shoal secrets fished for through Keystone, tokens whose roles allow nothing,
a Keystone that stops answering; noauth off loopback; forged request ids.

Keystone here is a stand-in on an httpx mock transport that answers as Keystone's
/v3/auth/tokens does, so the tests can count round trips and move time; tests/openstack runs
the real one."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from shoal.controller.app import create_app
from shoal.controller.keystone import KeystoneAuthenticator, KeystoneClient
from shoal.controller.settings import ControllerSettings, load_settings
from shoal.errors import ConfigError
from tests.api.helpers import ADMIN_SECRET

AUTH_URL = "http://keystone.test:5000/v3"
SERVICE = "service-token"
LB = {"loadbalancer": {"name": "web", "vip_subnet_id": "default"}}


@dataclass
class FakeKeystone:
    now: float = 1_000_000.0
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    subjects: list[str] = field(default_factory=list)  # every validated token, in order
    down: bool = False

    def clock(self) -> float:
        return self.now

    def issue(self, token: str, roles: list[str], project: str | None = "p1", ttl: float = 3600):
        self.tokens[token] = {
            "user": {"id": f"u-{token}", "name": f"user-{token}"},
            "project": {"id": project, "name": project} if project else None,
            "roles": [{"id": r, "name": r} for r in roles],
            "expires_at": _iso(self.now + ttl),
        }

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused")
        if request.method == "POST":
            body = {"token": {"expires_at": _iso(self.now + 3600)}}
            return httpx.Response(201, json=body, headers={"X-Subject-Token": SERVICE})
        if request.headers.get("x-auth-token") != SERVICE:
            return httpx.Response(401)
        subject = request.headers["x-subject-token"]
        self.subjects.append(subject)
        token = self.tokens.get(subject)
        if token is None:
            return httpx.Response(404, json={"error": {"code": 404}})
        return httpx.Response(200, json={"token": token})


def _iso(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


def keystone_settings(tmp_path: Path, **extra: Any) -> ControllerSettings:
    return load_settings(
        database_url=f"sqlite:///{tmp_path / 'controller.db'}",
        state_dir=str(tmp_path),
        bootstrap_token=ADMIN_SECRET,
        auth="keystone",
        keystone={"auth_url": AUTH_URL, "password": "pw", "cache_ttl": 300, "cache_size": 40},
        **extra,
    )


@pytest.fixture
def keystone() -> FakeKeystone:
    return FakeKeystone()


@pytest.fixture
def client(tmp_path: Path, keystone: FakeKeystone) -> Iterator[TestClient]:
    settings = keystone_settings(tmp_path)
    assert settings.keystone is not None
    ks = KeystoneClient(
        settings.keystone, transport=httpx.MockTransport(keystone.handler), clock=keystone.clock
    )
    app = create_app(settings, authenticator=KeystoneAuthenticator(ks, clock=keystone.clock))
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def call(client: TestClient, token: str, method: str = "GET", body: Any = None) -> httpx.Response:
    return client.request(
        method, "/v2/lbaas/loadbalancers", json=body, headers={"X-Auth-Token": token}
    )


def test_a_made_up_token_is_401_naming_keystone_and_asked_about_once(client, keystone):
    for _ in range(5):
        r = call(client, "gAAAAAforged")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == f'Keystone uri="{AUTH_URL}"'
        assert r.json()["faultstring"] == "the token is not valid"
    assert keystone.subjects == ["gAAAAAforged"]  # the refusal is cached


def test_a_flood_of_made_up_tokens_does_not_evict_valid_ones(client, keystone):
    keystone.issue("good", ["member"])
    assert call(client, "good").status_code == 200
    for i in range(200):  # 5x the cache size
        assert call(client, f"junk{i}").status_code == 401
    keystone.subjects.clear()
    assert call(client, "good").status_code == 200
    assert keystone.subjects == []  # still cached: no round trip


def test_a_valid_token_is_cached_but_never_past_its_own_expiry(client, keystone):
    keystone.issue("short", ["member"], ttl=100)
    assert call(client, "short").status_code == 200
    keystone.now += 50
    assert call(client, "short").status_code == 200
    assert keystone.subjects == ["short"]
    keystone.now += 51
    assert call(client, "short").status_code == 401  # expired, though cache_ttl is 300


def test_a_revoked_token_stops_working_after_cache_ttl(client, keystone):
    keystone.issue("t", ["member"])
    assert call(client, "t").status_code == 200
    del keystone.tokens["t"]  # revoked in Keystone
    keystone.now += 301
    assert call(client, "t").status_code == 401


def test_shoal_secrets_and_huge_tokens_never_reach_keystone(client, keystone):
    assert call(client, "shoal_" + "x" * 43).status_code == 401
    # A node credential Shoal no longer accepts (guessed, revoked, past its grace).
    assert call(client, "shoalnode_" + "x" * 43).status_code == 401
    assert call(client, "A" * 9000).status_code == 401
    assert keystone.subjects == []
    assert call(client, ADMIN_SECRET).status_code == 200  # Shoal's own tokens still work


@pytest.mark.parametrize("roles", [[], ["creator"], ["_member_", "heat_stack_owner"]])
def test_a_token_whose_roles_octavia_does_not_know_is_refused_everything(client, keystone, roles):
    keystone.issue("t", roles)
    r = call(client, "t")
    assert r.status_code == 403
    assert r.json()["faultstring"] == "Policy does not allow this request to be performed."
    assert call(client, "t", "POST", LB).status_code == 403


@pytest.mark.parametrize("roles", [["reader"], ["load-balancer_observer"]])
def test_observers_cannot_write(client, keystone, roles):
    keystone.issue("t", roles)
    assert call(client, "t").status_code == 200
    assert call(client, "t", "POST", LB).status_code == 403
    assert call(client, ADMIN_SECRET).json()["loadbalancers"] == []


def test_global_observer_reads_other_projects_but_cannot_write_them(client, keystone):
    keystone.issue("m", ["load-balancer_member"], project="p1")
    keystone.issue("g", ["load-balancer_global_observer"], project="p2")
    keystone.issue("other", ["member"], project="p3")
    lb = call(client, "m", "POST", LB).json()["loadbalancer"]
    assert lb["project_id"] == "p1"  # from the token
    assert [x["id"] for x in call(client, "g").json()["loadbalancers"]] == [lb["id"]]
    assert call(client, "other").json()["loadbalancers"] == []
    r = client.put(
        f"/v2/lbaas/loadbalancers/{lb['id']}",
        json={"loadbalancer": {"name": "x"}},
        headers={"X-Auth-Token": "g"},
    )
    assert r.status_code == 403


def test_a_member_cannot_create_in_another_project(client, keystone):
    keystone.issue("m", ["member"], project="p1")
    body = {"loadbalancer": {**LB["loadbalancer"], "project_id": "p2"}}
    assert call(client, "m", "POST", body).status_code == 403


def test_a_system_scoped_member_token_owns_no_project(client, keystone):
    keystone.issue("sys", ["member"], project=None)
    assert call(client, "sys").status_code == 403


def test_keystone_down_is_503_and_cached_tokens_keep_working(client, keystone):
    keystone.issue("known", ["member"])
    assert call(client, "known").status_code == 200
    keystone.down = True
    r = call(client, "unknown")
    assert r.status_code == 503 and "Keystone" in r.json()["faultstring"]
    assert call(client, "known").status_code == 200


def test_noauth_refuses_to_start_off_loopback(tmp_path):
    with pytest.raises(ConfigError, match="loopback only"):
        load_settings(state_dir=str(tmp_path), auth="noauth", listen="0.0.0.0:9876")
    with pytest.raises(ConfigError, match="loopback only"):
        load_settings(state_dir=str(tmp_path), auth="noauth", listen="192.0.2.1:9876")
    assert load_settings(state_dir=str(tmp_path), auth="noauth", listen="[::1]:9876")


def test_noauth_roles_header_still_enforces_roles(tmp_path):
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'c.db'}", state_dir=str(tmp_path), auth="noauth"
    )
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        h = {"X-Auth-Token": "notused", "X-Project-Id": "dev"}
        r = c.post("/v2/lbaas/loadbalancers", json=LB, headers=h)
        assert r.status_code == 201 and r.json()["loadbalancer"]["project_id"] == "dev"
        reader = {**h, "X-Roles": "reader"}
        assert c.post("/v2/lbaas/loadbalancers", json=LB, headers=reader).status_code == 403
        bad = {**h, "X-Project-Id": "x" * 300}
        assert c.get("/v2/lbaas/loadbalancers", headers=bad).status_code == 400


def test_a_forged_request_id_is_neither_echoed_nor_logged(client, caplog):
    forged = "req-00000000-0000-0000-0000-000000000000\nINFO admin deleted everything"
    with caplog.at_level(logging.INFO, logger="shoal.controller.requests"):
        r = client.get("/", headers={"x-openstack-request-id": forged.replace("\n", " ")})
        assert re.fullmatch(r"req-[0-9a-f-]{36}", r.headers["x-openstack-request-id"])
        assert r.headers["x-openstack-request-id"] != forged[:40]
        good = "req-11111111-2222-3333-4444-555555555555"
        r2 = client.get("/", headers={"x-openstack-request-id": good})
    log = caplog.text
    assert "deleted everything" not in log
    assert f"{r.headers['x-openstack-request-id']} " in log
    assert f"caller {good}" in log and r2.headers["x-openstack-request-id"] != good


def test_the_controller_renews_its_own_token_when_keystone_drops_it(client, keystone):
    keystone.issue("t", ["member"])
    logins = []
    original = keystone.handler

    def rotating(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            logins.append(1)
        elif len(logins) == 1:  # Keystone revoked the first service token
            return httpx.Response(401)
        return original(request)

    client.app.state.shoal.authenticator.client._http._transport = httpx.MockTransport(rotating)
    assert call(client, "t").status_code == 200
    assert len(logins) == 2


def test_a_service_user_without_the_service_role_is_a_clear_503(client, keystone):
    def forbidden(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return keystone.handler(request)
        return httpx.Response(403)

    client.app.state.shoal.authenticator.client._http._transport = httpx.MockTransport(forbidden)
    r = call(client, "anything")
    assert r.status_code == 503 and "service" in r.json()["faultstring"]
