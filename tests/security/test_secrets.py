"""Least secret, played as an attacker with a shell on a node or a copy of the controller's
database: no file an agent writes gives away a private key (only HAProxy's own 0600 files
in 0700 directories hold one), an L7 node is sent only the keys of what is placed on it,
HAProxy's workers run unprivileged in an empty chroot, and the keys that encrypt private
keys at rest live apart from the database, are owner-only, named in every ciphertext and
rotate in one transaction (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from fastapi.testclient import TestClient

from shoal import netns
from shoal.agents.api import AgentApi
from shoal.agents.l7.agent import L7Agent, L7AgentConfig
from shoal.controller.app import create_app
from shoal.controller.settings import ControllerSettings, load_settings

from ..api import conftest as api_conftest
from ..api.helpers import ADMIN_SECRET, Api
from ..api.test_placement import desired, placed_on, register, settle, tier
from ..pki import Pki

# Both databases, as tests/api runs them.
database_url = api_conftest.database_url
postgres_server = api_conftest.postgres_server
PKI = Pki()
PEM_KEY = b"PRIVATE KEY-----"
SHOAL = [sys.executable, "-m", "shoal.cli.main"]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")
needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")


def controller_settings(database_url: str, tmp: Path, **extra: Any) -> ControllerSettings:
    return load_settings(
        database_url=database_url,
        state_dir=str(tmp / "state"),
        key_dir=str(tmp / "keys"),
        bootstrap_token=ADMIN_SECRET,
        **extra,
    )


def tls_lb(
    api: Api, agent: Api, nodes: list[dict[str, Any]], host: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A load balancer with a TERMINATED_HTTPS listener using a new certificate for host."""
    cert = api.ok("POST", "/v2/shoal/certificates", {"certificate": PKI.upload(PKI.leaf(host))})
    lb = api.lb(name=host)
    settle(agent, nodes)
    api.listener(
        lb["id"], 443, "TERMINATED_HTTPS", default_tls_container_ref=cert["certificate"]["id"]
    )
    return lb, cert["certificate"]


# ---- what an L7 node is sent -------------------------------------------------------------


def test_an_l7_node_is_sent_only_the_keys_of_its_load_balancers(
    database_url: str, tmp_path: Path
) -> None:
    with TestClient(create_app(controller_settings(database_url, tmp_path))) as client:
        admin = Api(client, ADMIN_SECRET)
        agent = admin.with_token(admin.token("agent-1", "infra", "agent"))
        alice = admin.with_token(admin.token("alice", "alpha", "member"))
        bob = admin.with_token(admin.token("bob", "beta", "member"))
        nodes = tier(agent)
        every = list(nodes.values())
        mine = {
            lb["id"]: cert["id"]
            for lb, cert in (
                tls_lb(alice, agent, every, "a.example"),
                tls_lb(bob, agent, every, "b.example"),
            )
        }
        where = {lb_id: set(placed_on(admin, lb_id)) for lb_id in mine}
        for name, node in nodes.items():
            state = desired(agent, node)
            if name == "l4":
                assert "certificates" not in state
                assert PEM_KEY.decode() not in str(state)
                continue
            expected = {cert for lb_id, cert in mine.items() if name in where[lb_id]}
            assert set(state["certificates"]) == expected, name
            placed = {e["id"] for e in state["load_balancers"]}
            assert placed == {lb_id for lb_id in mine if name in where[lb_id]}
        # Every node with nothing placed on it is sent no key at all.
        idle = [n for n in nodes if n != "l4" and not any(n in w for w in where.values())]
        for name in idle:
            assert desired(agent, nodes[name])["certificates"] == {}


# ---- what an L7 agent writes -------------------------------------------------------------


@pytest.fixture
def l7_namespace() -> Iterator[str]:
    ns = f"shoal-sec{os.getpid() % 100000}"
    netns.delete(ns)
    netns.add(ns)
    try:
        yield ns
    finally:
        netns.delete(ns)


def desired_from_a_controller(tmp: Path) -> tuple[dict[str, Any], str]:
    """A real controller's desired state for an L7 node holding a TLS load balancer, and the
    host name of its certificate."""
    settings = controller_settings(f"sqlite:///{tmp / 'c.db'}", tmp)
    with TestClient(create_app(settings)) as client:
        admin = Api(client, ADMIN_SECRET)
        agent = admin.with_token(admin.token("agent-1", "infra", "agent"))
        alice = admin.with_token(admin.token("alice", "alpha", "member"))
        a = register(agent, "l7a", cluster="a", data_address="10.9.0.1", capacity=10)
        b = register(agent, "l7b", cluster="b", data_address="10.9.0.2", capacity=10)
        tls_lb(alice, agent, [a, b], "shop.example")
        state = desired(agent, a)
    assert len(state["certificates"]) == 1 and len(state["load_balancers"]) == 1
    return state, "shop.example"


@pytest.mark.netns
@needs_root
@needs_haproxy
@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_no_file_an_l7_agent_writes_gives_away_a_private_key(
    tmp_path: Path, l7_namespace: str, umask: int
) -> None:
    state, host = desired_from_a_controller(tmp_path / "controller")
    cfg = L7AgentConfig(
        controller="http://127.0.0.1:9",
        token="unused",
        name="l7a",
        data_address="127.0.0.1",
        run_dir=tmp_path / "run",
        state_dir=tmp_path / "agent",
    )
    old = os.umask(umask)  # modes must not depend on it
    agent = L7Agent(cfg, AgentApi(cfg.controller, cfg.token))
    try:
        with netns.entered(l7_namespace):
            netns.run(["ip", "link", "set", "lo", "up"])
            agent.prepare()
            agent.apply(state)  # what the loop does with each desired state
            agent.cache_desired(state)
            vip = state["load_balancers"][0]["config"]["vip_address"]
            served = served_certificate(vip)
            workers = worker_pids(agent.proxy.master_pid())
        assert host in served  # the workers loaded the key before dropping root
        home = cfg.run_dir / cfg.name
        tls = home / "tls"
        holders = []
        for path in sorted([*cfg.run_dir.rglob("*"), *cfg.state_dir.rglob("*")]):
            mode = path.stat().st_mode & 0o777
            if path.is_dir():
                expected = 0o555 if path == home / "empty" else 0o700
                assert mode == expected or path == cfg.run_dir, f"{path}: {mode:o}"
            elif path.is_file():
                # HAProxy writes its pid file 0644 itself; the 0700 directory covers it.
                assert mode & 0o077 == 0 or path.name == "haproxy.pid", f"{path}: {mode:o}"
                if PEM_KEY in path.read_bytes():
                    holders.append(path)
        assert holders, "the TLS bundle should be on disk for HAProxy"
        for path in holders:  # only HAProxy's certificate files
            assert path.parent.parent == tls and path.suffix == ".pem", path
            assert path.stat().st_mode & 0o777 == 0o600
        cached = (cfg.state_dir / "l7a.desired.json").read_text()
        assert "PRIVATE KEY" not in cached and "BEGIN CERTIFICATE" not in cached
        # The workers: the haproxy user, chrooted to the empty directory.
        haproxy = pwd.getpwnam("haproxy")
        assert workers
        for pid in workers:
            uids = status_field(pid, "Uid").split()
            gids = status_field(pid, "Gid").split()
            assert uids == [str(haproxy.pw_uid)] * 4, uids
            assert gids == [str(haproxy.pw_gid)] * 4, gids
            assert os.readlink(f"/proc/{pid}/root") == str(home / "empty")
            assert not os.listdir(home / "empty")
    finally:
        os.umask(old)
        with netns.entered(l7_namespace):
            agent.close(stop_proxy=True)


def served_certificate(vip: str) -> str:
    """The certificate HAProxy presents on the VIP (the handshake only; no backend needed)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + 10
    while True:
        try:
            with (
                socket.create_connection((vip, 443), timeout=2) as raw,
                ctx.wrap_socket(raw, server_hostname="shop.example") as tls,
            ):
                der = tls.getpeercert(binary_form=True)
                assert der is not None
                return x509.load_der_x509_certificate(der).subject.rfc4514_string()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def worker_pids(master: int | None) -> list[int]:
    assert master is not None
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} in /proc/{pid}/status")
