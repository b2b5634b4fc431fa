"""The controller's /metrics: who may scrape it, what it counts, and that nothing a client
sends becomes a label value."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from shoal.controller.app import create_app

from ..pki import Pki
from .conftest import make_settings
from .helpers import Api, Fleet


def scrape(api: Api) -> dict[str, list]:
    r = api.request("GET", "/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def value(families: dict[str, list], sample: str, **labels: str) -> float:
    family = families[sample.removesuffix("_total").removesuffix("_count")]
    found = [
        s.value
        for s in family
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(found)


def test_only_admins_and_the_scrape_token_may_scrape(
    admin: Api, alice: Api, database_url: str, tmp_path: Path
) -> None:
    assert admin.request("GET", "/metrics").status_code == 200
    r = alice.client.get("/metrics")  # no token
    assert r.status_code == 401 and "faultstring" in r.json()
    r = alice.request("GET", "/metrics")  # a project member sees other projects' ids there
    assert r.status_code == 403 and "admin" in r.json()["faultstring"]
    token_file = tmp_path / "scrape.token"
    token_file.write_text("scrape-secret-0123456789\n")
    token_file.chmod(0o600)
    settings = make_settings(database_url, tmp_path / "other", metrics_token_file=str(token_file))
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        ok = c.get("/metrics", headers={"Authorization": "Bearer scrape-secret-0123456789"})
        assert ok.status_code == 200 and "shoal_load_balancers" in ok.text
        bad = c.get("/metrics", headers={"Authorization": "Bearer scrape-secret-01234567"})
        assert bad.status_code == 401


def test_a_readable_scrape_token_file_stops_the_start(database_url: str, tmp_path: Path) -> None:
    token_file = tmp_path / "scrape.token"
    token_file.write_text("secret")
    token_file.chmod(0o644)
    settings = make_settings(database_url, tmp_path, metrics_token_file=str(token_file))
    with pytest.raises(Exception, match="readable by others"):
        create_app(settings)


def test_requests_writes_and_state_are_counted(alice: Api, admin: Api, agent: Fleet) -> None:
    lb = alice.l4_stack(members=2)["lb"]
    alice.ok("GET", f"/v2/lbaas/loadbalancers/{lb['id']}")
    alice.request("GET", "/v2/lbaas/loadbalancers/does-not-exist")
    node = agent.ok("POST", "/v2/shoal/nodes", {"name": "l4-a", "role": "l4"}, expect=201)["node"]
    m = scrape(admin)
    route = "/v2/lbaas/loadbalancers/{lb_id}"
    assert value(m, "shoal_api_request_duration_seconds_count", route=route, status="200") >= 1
    assert value(m, "shoal_api_request_duration_seconds_count", route=route, status="404") == 1
    created = value(m, "shoal_api_writes_total", action="create", resource="loadbalancer")
    assert created == 1
    assert value(m, "shoal_revisions_published_total") >= 4  # lb, listener, pool, members
    shown = alice.get_lb(lb["id"])["provisioning_status"]
    assert value(m, "shoal_load_balancers", kind="l4") == 1
    assert value(m, "shoal_load_balancers", kind="l4", provisioning_status=shown) == 1
    assert value(m, "shoal_nodes", role="l4", admin_state="ACTIVE", operating_status="ONLINE") == 1
    assert value(m, "shoal_feed_position") >= 4
    assert value(m, "shoal_node_feed_lag", node="l4-a") == value(m, "shoal_feed_position")
    assert value(m, "shoal_feed_long_poll_waiters") == 0
    # The node reports what it applied: its lag goes to 0.
    seq = agent.ok("GET", f"/v2/shoal/nodes/{node['id']}/desired-state")["seq"]
    agent.ok("POST", f"/v2/shoal/nodes/{node['id']}/report", {"seq": seq, "errors": []})
    assert value(scrape(admin), "shoal_node_feed_lag", node="l4-a") == 0


def test_certificate_expiry_is_exported_in_seconds(alice: Api, admin: Api) -> None:
    pki = Pki()
    leaf = pki.leaf("www.example.com")
    cert = alice.ok(
        "POST", "/v2/shoal/certificates", {"certificate": pki.upload(leaf, "www")}, expect=201
    )["certificate"]
    m = scrape(admin)
    expiry = value(m, "shoal_certificate_expiry_timestamp_seconds", certificate_id=cert["id"])
    assert abs(expiry - leaf.cert.not_valid_after_utc.timestamp()) < 2


def test_made_up_paths_and_methods_never_become_labels(admin: Api) -> None:
    """An attacker who sends random paths and methods must not grow the label set."""
    for i in range(20):
        admin.request("GET", f"/random-{i}/x")
        admin.client.request(f"X{i}METHOD", "/v2/lbaas/loadbalancers")
    text = admin.request("GET", "/metrics").text
    assert "random-" not in text and "METHOD" not in text
    m = scrape(admin)
    routes = {s.labels["route"] for s in m["shoal_api_request_duration_seconds"]}
    methods = {s.labels["method"] for s in m["shoal_api_request_duration_seconds"]}
    assert "unmatched" in routes and all(r == "unmatched" or r.startswith("/") for r in routes)
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "testclient" not in text  # the client's address is no label either


def test_writes_store_their_request_id_for_the_agents(alice: Api, agent: Fleet) -> None:
    r = alice.request("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"flavor_id": "l4"}})
    rid = r.headers["x-openstack-request-id"]
    node = agent.ok("POST", "/v2/shoal/nodes", {"name": "l4-a", "role": "l4"}, expect=201)["node"]
    (entry,) = agent.ok("GET", f"/v2/shoal/nodes/{node['id']}/desired-state")["load_balancers"]
    assert entry["request_id"] == rid and entry["revision"] == 1
    rev = alice.ok("GET", f"/v2/shoal/loadbalancers/{r.json()['loadbalancer']['id']}/revisions/1")
    assert rev["revision"]["request_id"] == rid


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus)")
def test_promtool_finds_no_naming_problem(admin: Api, alice: Api, agent: Fleet) -> None:
    alice.l4_stack(members=1)
    agent.ok("POST", "/v2/shoal/nodes", {"name": "l4-a", "role": "l4"}, expect=201)
    text = admin.request("GET", "/metrics").text
    proc = subprocess.run(
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
