"""HSTS on TERMINATED_HTTPS listeners (Octavia 2.27's fields and rules, rendered into
HAProxy's configuration), Barbican references refused with a way out, and the amphora API
as Octavia answers it for a provider without amphorae."""

from __future__ import annotations

import json
from typing import Any

from shoal.agents.l7.model import build

from ..pki import Pki
from .helpers import Api

PKI = Pki()
LI = "/v2/lbaas/listeners"


def _https(alice: Api, **fields: Any) -> Any:
    cert = alice.ok(
        "POST",
        "/v2/shoal/certificates",
        {"certificate": PKI.upload(PKI.leaf("h.example"))},
        expect=201,
    )
    lb = alice.lb()
    body = {
        "listener": {
            "loadbalancer_id": lb["id"],
            "protocol": "TERMINATED_HTTPS",
            "protocol_port": 443,
            "default_tls_container_ref": cert["certificate"]["id"],
            **fields,
        }
    }
    return lb, alice.request("POST", LI, body)


def test_hsts_is_stored_shown_and_rendered(alice: Api, admin: Api) -> None:
    lb, r = _https(alice, hsts_max_age="31536000", hsts_include_subdomains=True)
    assert r.status_code == 201, r.text
    li = r.json()["listener"]
    assert (li["hsts_max_age"], li["hsts_include_subdomains"], li["hsts_preload"]) == (
        31536000,
        True,
        False,
    )
    revisions = admin.ok("GET", f"/v2/shoal/loadbalancers/{lb['id']}/revisions")["revisions"]
    config = admin.ok(
        "GET", f"/v2/shoal/loadbalancers/{lb['id']}/revisions/{revisions[0]['number']}"
    )["revision"]["config"]
    config = json.loads(config) if isinstance(config, str) else config
    (frontend,) = build([config], "/crt").frontends
    assert (
        'http-response set-header Strict-Transport-Security "max-age=31536000; includeSubDomains;"'
        in frontend.lines
    )
    # Turning it off: a null max age, as in Octavia.
    off = alice.ok(
        "PUT",
        f"{LI}/{li['id']}",
        {"listener": {"hsts_max_age": None, "hsts_include_subdomains": False}},
    )
    assert off["listener"]["hsts_max_age"] is None


def test_hsts_follows_octavias_rules(alice: Api) -> None:
    _, r = _https(alice, hsts_preload=True)
    assert r.status_code == 400 and "only make sense if hsts_max_age" in r.text
    _, r = _https(alice, hsts_max_age=-1)
    assert r.status_code == 400
    lb = alice.lb()
    body = {
        "listener": {
            "loadbalancer_id": lb["id"],
            "protocol": "HTTP",
            "protocol_port": 80,
            "hsts_max_age": 10,
        }
    }
    r = alice.request("POST", LI, body)
    assert r.status_code == 400 and "TERMINATED_HTTPS protocol" in r.text


def test_barbican_refs_are_refused_with_the_way_out(alice: Api) -> None:
    lb = alice.lb()
    ref = "https://barbican.example:9311/v1/containers/0b1e7c5e-52f3-4d7e-a8c4-5e3a2e1c9d10"
    body = {
        "listener": {
            "loadbalancer_id": lb["id"],
            "protocol": "TERMINATED_HTTPS",
            "protocol_port": 443,
            "default_tls_container_ref": ref,
        }
    }
    r = alice.request("POST", LI, body)
    assert r.status_code == 400
    assert "no Barbican client" in r.text and "shoal certificate upload" in r.text


def test_amphora_api_answers_as_for_a_provider_without_amphorae(admin: Api, alice: Api) -> None:
    assert admin.ok("GET", "/v2/octavia/amphorae") == {"amphorae": [], "amphorae_links": []}
    some = "2f0f7c0e-8b1e-4a51-9d3c-0d2c5c1b6a77"
    for method, path in (
        ("GET", f"/v2/octavia/amphorae/{some}"),
        ("GET", f"/v2/octavia/amphorae/{some}/stats"),
        ("PUT", f"/v2/octavia/amphorae/{some}/failover"),
        ("PUT", f"/v2/octavia/amphorae/{some}/config"),
    ):
        r = admin.request(method, path)
        assert r.status_code == 404 and r.json()["faultstring"] == f"Amphora {some} not found."
    assert alice.request("GET", "/v2/octavia/amphorae").status_code == 403
