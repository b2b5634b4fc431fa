"""API hygiene: bounded request bodies (413), no control characters in names, an ETag on
every write that changes a load balancer."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shoal.controller.app import create_app

from .conftest import make_settings
from .helpers import ADMIN_SECRET, Api


@pytest.fixture
def small_limit(database_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = make_settings(
        database_url, tmp_path, max_body_bytes=4096, max_agent_body_bytes=65536
    )
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        yield Api(c, ADMIN_SECRET)


def test_a_body_over_the_limit_is_413_in_octavia_format(admin: Api, small_limit: Api) -> None:
    big = b'{"loadbalancer": {"name": "' + b"x" * (1 << 20) + b'"}}'
    r = admin.client.post(
        "/v2/lbaas/loadbalancers",
        content=big,
        headers={"X-Auth-Token": ADMIN_SECRET, "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["faultcode"] == "Client" and "1048576 bytes" in r.json()["faultstring"]
    # The limit is a setting; below it a request goes through as usual.
    assert (
        small_limit.request(
            "POST",
            "/v2/lbaas/loadbalancers",
            {"loadbalancer": {"name": "x" * 200, "description": "y" * 200}},
        ).status_code
        == 201
    )
    r = small_limit.request(
        "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {"tags": ["t" * 200] * 30}}
    )
    assert r.status_code == 413 and "4096 bytes" in r.json()["faultstring"]
    assert small_limit.ok("GET", "/v2/lbaas/loadbalancers")["loadbalancers"][0]["name"] == "x" * 200


def test_the_agents_reports_have_their_own_limit(small_limit: Api) -> None:
    """A node's report grows with the load balancers it serves; the tenant API's limit stays."""
    report = {
        "seq": 1,
        "errors": [],
        "digests": {"x" * 36: {"y" * 40: "z" * 64}},
        "pad": "p" * 8000,
    }
    r = small_limit.request("POST", "/v2/shoal/nodes/no-such-node/report", report)
    assert r.status_code != 413 and r.status_code < 500, r.text  # refused for its content
    report["pad"] = "p" * 70000
    r = small_limit.request("POST", "/v2/shoal/nodes/no-such-node/report", report)
    assert r.status_code == 413 and "65536 bytes" in r.json()["faultstring"]
    r = small_limit.request("POST", "/v2/shoal/tokens", {"token": {"name": "n" * 8000}})
    assert r.status_code == 413


def test_a_streamed_body_over_the_limit_is_cut_off(small_limit: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"loadbalancer": {"name": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}}'

    r = small_limit.client.post(
        "/v2/lbaas/loadbalancers",
        content=chunks(),
        headers={"X-Auth-Token": ADMIN_SECRET, "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert small_limit.ok("GET", "/v2/lbaas/loadbalancers")["loadbalancers"] == []


def _raw(url: str, head: bytes, body: bytes) -> bytes:
    """Sends a head and part of a body, then reads what the server says; the client never
    sends the rest, so an answer proves the server did not wait for the whole body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head + body)
        deadline = time.monotonic() + 10
        data = b""
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            part = s.recv(65536)
            if not part:
                break
            data += part
        return data


def test_the_server_answers_413_without_reading_the_body(live_server: str) -> None:
    head = (
        b"POST /v2/lbaas/loadbalancers HTTP/1.1\r\nHost: x\r\n"
        b"X-Auth-Token: " + ADMIN_SECRET.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    )
    assert _raw(live_server, head, b'{"loadbalancer": {').startswith(b"HTTP/1.1 413")
    chunked = (
        b"POST /v2/lbaas/loadbalancers HTTP/1.1\r\nHost: x\r\n"
        b"X-Auth-Token: " + ADMIN_SECRET.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(20))  # 1.25 MiB
    assert _raw(live_server, chunked, body).startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "web\x00"},
        {"name": "a\nb"},
        {"description": "\x1b[31mred"},
        {"description": "evil\u202egnp.exe"},
        {"tags": ["ok", "bad\x07"]},
    ],
)
def test_control_characters_in_names_are_refused(alice: Api, fields: dict) -> None:
    r = alice.request("POST", "/v2/lbaas/loadbalancers", {"loadbalancer": fields})
    assert r.status_code == 400, r.text
    field = next(iter(fields))
    assert r.json()["faultstring"].startswith(f"Invalid input for field/attribute {field}")
    assert "control character" in r.json()["faultstring"]
    assert alice.ok("GET", "/v2/lbaas/loadbalancers")["loadbalancers"] == []


def test_names_in_any_script_still_pass(alice: Api) -> None:
    lb = alice.lb(name="café-東京", description="tab-free, emoji ok 🐟")
    assert lb["name"] == "café-東京"


def test_every_write_answers_with_the_revision_it_made(alice: Api) -> None:
    stack = alice.l4_stack(members=1)
    lb_id, pool_id = stack["lb"]["id"], stack["pool"]["id"]

    def etag() -> str:
        return str(alice.request("GET", f"/v2/lbaas/loadbalancers/{lb_id}").headers["ETag"])

    current = etag()
    batch = {
        "members": [
            {"address": "10.1.0.1", "protocol_port": 80},
            {"address": "10.1.0.2", "protocol_port": 80},
        ]
    }
    r = alice.request("PUT", f"/v2/lbaas/pools/{pool_id}/members", batch, {"If-Match": current})
    assert r.status_code == 202 and r.headers["ETag"] == etag() != current
    # The ETag just returned is good for the next write, without a GET in between.
    member = alice.ok("GET", f"/v2/lbaas/pools/{pool_id}/members")["members"][1]
    r2 = alice.request(
        "DELETE",
        f"/v2/lbaas/pools/{pool_id}/members/{member['id']}",
        headers={"If-Match": r.headers["ETag"]},
    )
    assert r2.status_code == 204 and r2.headers["ETag"] == etag()
    r3 = alice.request("PUT", f"/v2/lbaas/loadbalancers/{lb_id}/failover")
    assert r3.status_code == 202 and r3.headers["ETag"] == etag()
    stale = alice.request(
        "PUT", f"/v2/lbaas/pools/{pool_id}/members", batch, {"If-Match": r.headers["ETag"]}
    )
    assert stale.status_code == 409
    li = alice.request("DELETE", f"/v2/lbaas/listeners/{stack['listener']['id']}")
    assert li.status_code == 204 and li.headers["ETag"] == etag()
