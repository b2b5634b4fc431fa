"""Transport: the controller speaks HTTPS with a certificate from the internal CA, clients
verify it, and plain HTTP is refused off loopback on both sides unless asked for."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from shoal.agents.api import AgentApi, ControllerUnavailableError
from shoal.controller.app import create_app
from shoal.controller.servercert import issue_server_files
from shoal.controller.settings import ControllerSettings, load_settings
from shoal.errors import ConfigError
from shoal.transport import read_secret_file, verify_for

ADMIN = "transport-admin"


def settings(tmp: Path, **extra: object) -> ControllerSettings:
    return load_settings(
        database_url=f"sqlite:///{tmp / 'c.db'}", state_dir=str(tmp), bootstrap_token=ADMIN, **extra
    )


@pytest.fixture
def https_controller(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    files = issue_server_files(settings(tmp_path), tmp_path / "tls", ["localhost"], ["127.0.0.1"])
    assert (files.key.stat().st_mode & 0o777) == 0o600
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = settings(tmp_path, tls_cert=files.cert, tls_key=files.key)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(cfg),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ssl_certfile=str(files.cert),
            ssl_keyfile=str(files.key),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "controller did not start"
        time.sleep(0.02)
    yield f"https://127.0.0.1:{port}", files.ca_bundle
    server.should_exit = True
    thread.join(10)


def test_https_verified_against_the_internal_ca(https_controller: tuple[str, Path]) -> None:
    url, ca = https_controller
    # This asserts verification, not speed: httpx's default 5 s read timeout expired on this
    # first request on a machine at load average 9.
    ok = httpx.get(
        f"{url}/v2/shoal/nodes",
        headers={"X-Auth-Token": ADMIN},
        verify=verify_for(url, ca, False),
        timeout=60,
    )
    assert ok.status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/healthcheck", verify=verify_for(url, None, False), timeout=60)
    # An agent without the bundle does not talk to it (nor send it its credential).
    with pytest.raises(ControllerUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
        AgentApi(url, "x").desired_state("n")
    # Plain HTTP to the TLS port gets no API answer.
    plain = url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        r = httpx.get(f"{plain}/v2/shoal/nodes", headers={"X-Auth-Token": ADMIN}, timeout=3)
        assert r.status_code >= 400 and "nodes" not in r.text
        raise httpx.HTTPError("answered an error")


def test_plain_http_is_refused_off_loopback(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path))
    with TestClient(app) as c:  # plain HTTP from "testclient", not a loopback address
        r = c.get("/v2/shoal/nodes", headers={"X-Auth-Token": ADMIN})
        assert r.status_code == 403 and "plain HTTP" in r.json()["faultstring"]
    with TestClient(app, client=("127.0.0.1", 4000)) as c:
        assert c.get("/v2/shoal/nodes", headers={"X-Auth-Token": ADMIN}).status_code == 200
    with TestClient(app, base_url="https://testserver") as c:
        assert c.get("/v2/shoal/nodes", headers={"X-Auth-Token": ADMIN}).status_code == 200
    open_app = create_app(settings(tmp_path, insecure_http=True))
    with TestClient(open_app) as c:
        assert c.get("/v2/shoal/nodes", headers={"X-Auth-Token": ADMIN}).status_code == 200


def test_the_controller_will_not_serve_plain_http_off_loopback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="plain HTTP off loopback"):
        settings(tmp_path, listen="0.0.0.0:9876").check_transport()
    settings(tmp_path, listen="127.0.0.1:9876").check_transport()
    settings(tmp_path, listen="[::1]:9876").check_transport()
    settings(tmp_path, listen="0.0.0.0:9876", insecure_http=True).check_transport()
    cert = tmp_path / "c.pem"
    settings(tmp_path, listen="0.0.0.0:9876", tls_cert=cert, tls_key=cert).check_transport()


def test_clients_refuse_to_send_credentials_in_the_clear() -> None:
    with pytest.raises(ConfigError, match="plain HTTP"):
        AgentApi("http://10.88.9.1:9876", "secret")
    with pytest.raises(ConfigError, match="plain HTTP"):
        verify_for("http://controller.example:9876", None, False)
    assert verify_for("http://127.0.0.1:9876", None, False) is True
    assert verify_for("http://10.88.9.1:9876", None, True) is True


def test_credential_files_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "credential"
    path.write_text("shoalnode_x\n")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_secret_file(path)
    os.chmod(path, 0o600)
    assert read_secret_file(path) == "shoalnode_x"
