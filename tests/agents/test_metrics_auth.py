"""The agents' /metrics listener as an attacker on the management network meets it: with a
scrape token, no token, a wrong one, or a token of another kind (the controller's scrape
token, an admin's, a node credential) gets a 401 that shows no metric and no path; off
loopback the agent refuses to start without a token unless told --metrics-insecure; and no
client address ever becomes a label."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import Counter

from shoal.agents.metrics import MetricsServer, agent_registry, check_exposure
from shoal.errors import ConfigError

TOKEN = "agent-scrape-4f9c2d"


@pytest.fixture
def server() -> Iterator[str]:
    registry = agent_registry("l4")
    Counter("shoal_test_probe", "a metric that must not leak", registry=registry).inc()
    srv = MetricsServer("127.0.0.1:0", registry, token=TOKEN).start()
    try:
        host, port = srv.address[:2]
        yield f"http://{host}:{port}"
    finally:
        srv.close()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Basic {TOKEN}"},  # the right secret in the wrong scheme
        {"X-Auth-Token": "lab-scrape-controller-token"},  # the controller's kind
        {"X-Auth-Token": "admin-bootstrap"},  # an admin's Shoal token
        {"Authorization": "Bearer"},
    ],
)
def test_no_token_or_another_one_is_a_401_without_metrics(
    server: str, headers: dict[str, str]
) -> None:
    for path in ("/metrics", "/", "/nope"):  # not even which paths exist
        r = httpx.get(server + path, headers=headers)
        assert r.status_code == 401, (path, headers)
        assert "shoal_" not in r.text and "only /metrics" not in r.text
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_scrape_token_opens_it_either_way(server: str) -> None:
    for headers in ({"Authorization": f"Bearer {TOKEN}"}, {"X-Auth-Token": TOKEN}):
        r = httpx.get(server + "/metrics", headers=headers)
        assert r.status_code == 200 and "shoal_test_probe_total 1.0" in r.text
    assert httpx.get(server + "/x", headers={"X-Auth-Token": TOKEN}).status_code == 404


def test_a_client_address_never_becomes_a_label(server: str) -> None:
    headers = {"X-Auth-Token": TOKEN, "X-Forwarded-For": "203.0.113.77"}
    for _ in range(3):
        text = httpx.get(server + "/metrics", headers=headers).text
    assert "203.0.113.77" not in text and "127.0.0.1" not in text


@pytest.mark.parametrize("listen", ["0.0.0.0:9470", "[::]:9470", "10.0.0.5:9470", "node:9470"])
def test_off_loopback_needs_a_token_or_an_explicit_insecure(listen: str) -> None:
    with pytest.raises(ConfigError, match="need --metrics-token-file"):
        check_exposure(listen, None, insecure=False)
    check_exposure(listen, TOKEN, insecure=False)
    check_exposure(listen, None, insecure=True)


@pytest.mark.parametrize("listen", ["127.0.0.1:9470", "[::1]:9470", "localhost:9470"])
def test_loopback_needs_no_token(listen: str) -> None:
    check_exposure(listen, None, insecure=False)


def _agent(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOAL_NODE_CREDENTIAL": "node-credential"}
    cmd = [sys.executable, "-m", "shoal.cli.main", "agent", "l7", "--name", "x"]
    cmd += ["--data-address", "192.0.2.1", "--state-dir", str(tmp_path), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="the agents refuse to run without root first")
def test_the_agent_refuses_to_start_exposed_in_one_line(tmp_path: Path) -> None:
    r = _agent(tmp_path, "--metrics-listen", "0.0.0.0:0")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "need --metrics-token-file" in r.stderr and r.stderr.count("\n") == 1
    loose = tmp_path / "token"
    loose.write_text(TOKEN)
    loose.chmod(0o644)
    r = _agent(tmp_path, "--metrics-listen", "0.0.0.0:0", "--metrics-token-file", str(loose))
    assert r.returncode == 1 and "chmod 600" in r.stderr and TOKEN not in r.stderr
