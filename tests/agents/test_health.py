"""Health checks against real services on the loopback of a private namespace."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shoal import netns
from shoal.agents.health import CheckSpec, HealthScheduler, codes_match, run_check

pytestmark = pytest.mark.netns


@pytest.mark.parametrize(
    ("expected", "status", "ok"),
    [
        ("200", 200, True),
        ("200", 201, False),
        ("200,202,204", 204, True),
        ("200-299", 250, True),
        ("200-299", 300, False),
        ("301,500-503", 502, True),
    ],
)
def test_expected_codes(expected: str, status: int, ok: bool) -> None:
    assert codes_match(expected, status) is ok


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/ok" else 503
        if self.path == "/host":
            code = 200 if self.headers.get("Host") == "app.example" else 421
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app.example")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tmp / "c.pem", tmp / "k.pem"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """HTTP, HTTPS, a TCP listener and a UDP socket inside a fresh namespace."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    ns = f"shoal-hc{os.getpid()}"
    netns.add(ns)
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    try:
        with netns.entered(ns):
            http = HTTPServer(("127.0.0.1", 0), Handler)
            https = HTTPServer(("127.0.0.1", 0), Handler)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            https.socket = ctx.wrap_socket(https.socket, server_side=True)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            closed = socket.socket()
            closed.bind(("127.0.0.1", 0))
            closed_port = closed.getsockname()[1]
            closed.close()
        for server in (http, https):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        with netns.entered(ns):
            yield {
                "http": http.server_port,
                "https": https.server_port,
                "udp": udp.getsockname()[1],
                "closed": closed_port,
                "ns": ns,
            }  # type: ignore[dict-item]
        http.shutdown()
        https.shutdown()
        udp.close()
    finally:
        netns.delete(ns)


def spec(type_: str, port: int, **kw: object) -> CheckSpec:
    return CheckSpec(
        member_id="m", address="127.0.0.1", port=port, type=type_, delay=1, timeout=1, **kw
    )  # type: ignore[arg-type]


def test_tcp(services) -> None:
    assert run_check(spec("TCP", services["http"])) == (True, "")
    assert run_check(spec("TCP", services["closed"])) == (False, "connection refused")


def test_http_expected_codes_and_host(services) -> None:
    assert run_check(spec("HTTP", services["http"], url_path="/ok"))[0]
    ok, detail = run_check(spec("HTTP", services["http"], url_path="/bad"))
    assert not ok and detail == "HTTP 503, expected 200"
    assert run_check(spec("HTTP", services["http"], url_path="/bad", expected_codes="500-599"))[0]
    assert not run_check(spec("HTTP", services["http"], url_path="/host"))[0]
    assert run_check(spec("HTTP", services["http"], url_path="/host", domain_name="app.example"))[0]


def test_https_and_tls_hello(services) -> None:
    assert run_check(spec("HTTPS", services["https"], url_path="/ok"))[0]
    assert run_check(spec("TLS-HELLO", services["https"]))[0]
    assert not run_check(spec("TLS-HELLO", services["http"]))[0]  # plain HTTP is no TLS


def test_udp_connect_and_ping(services) -> None:
    assert run_check(spec("UDP-CONNECT", services["udp"]))[0]
    assert run_check(spec("UDP-CONNECT", services["closed"])) == (False, "connection refused")
    assert run_check(spec("PING", 0))[0]
    unreachable = CheckSpec("m", "192.0.2.1", 0, "PING", 1, 0.3)
    assert not run_check(unreachable)[0]


def test_scheduler_repeats_each_check_every_delay(services) -> None:
    scheduler = HealthScheduler(workers=4)
    try:
        scheduler.update(
            [
                CheckSpec("up", "127.0.0.1", services["http"], "TCP", 0.2, 1),
                CheckSpec("down", "127.0.0.1", services["closed"], "TCP", 0.2, 1),
            ]
        )
        time.sleep(1.0)
        results = scheduler.drain()
    finally:
        scheduler.close()
    ups = [r for r in results if r["member_id"] == "up"]
    downs = [r for r in results if r["member_id"] == "down"]
    assert 2 <= len(ups) <= 8 and all(r["ok"] for r in ups)  # one per delay, not more
    assert 2 <= len(downs) <= 8 and not any(r["ok"] for r in downs)


def _spec(member: str, delay: float = 5.0) -> CheckSpec:
    return CheckSpec(member, "127.0.0.1", 9, "TCP", delay, 1)


def test_the_scheduler_takes_what_is_due_and_nothing_else() -> None:
    """take_due() by time: new checks at once, then each every delay; a dropped check never
    again, a kept one on its own schedule, a running one not twice at once."""
    scheduler = HealthScheduler(workers=1)
    scheduler.close()  # no loop: the test drives the clock
    members = [f"m{i}" for i in range(1000)]
    scheduler.replace({"lb-a": [_spec(m) for m in members[:500]]})
    scheduler.replace({"lb-b": [_spec(m) for m in members[500:]]})
    t0 = time.monotonic()
    first = scheduler.take_due(t0)
    assert sorted(s.member_id for s in first) == sorted(members)
    for m in members:
        scheduler.finished(m)
    assert scheduler.take_due(t0 + 1) == []
    # lb-a's checks go; lb-b's keep their schedule (not checked again at once).
    scheduler.replace({}, gone=["lb-a"])
    scheduler.replace({"lb-b": [_spec(m) for m in members[500:]]})
    assert scheduler.take_due(t0 + 2) == []
    again = scheduler.take_due(t0 + 5.01)
    assert sorted(s.member_id for s in again) == sorted(members[500:])
    # m500 still running: not taken while it runs, taken on the tick after it finished.
    for m in members[501:]:
        scheduler.finished(m)
    assert "m500" not in {s.member_id for s in scheduler.take_due(t0 + 10.02)}
    scheduler.finished("m500")
    assert [s.member_id for s in scheduler.take_due(t0 + 10.2)] == ["m500"]
    # Rescheduling leaves stale heap entries behind; they stay bounded by what is planned.
    for _ in range(50):
        scheduler.replace({}, gone=["lb-b"])
        scheduler.replace({"lb-b": [_spec(m) for m in members[500:]]})
        scheduler.take_due(t0 + 11)
    assert len(scheduler._heap) <= 2 * len(scheduler.planned()) + 64
