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
import yaml
from cryptography import x509
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from shoal import netns
from shoal.agents.api import AgentApi
from shoal.agents.l7.agent import L7Agent, L7AgentConfig
from shoal.controller.app import create_app
from shoal.controller.services import keyring
from shoal.controller.settings import ControllerSettings, load_settings

from ..api import conftest as api_conftest
from ..api.helpers import ADMIN_SECRET, Api, Fleet
from ..api.test_placement import desired, placed_on, register, settle, tier
from ..pki import Pki

HTTPS = "https://testserver"  # the controller refuses plain HTTP off loopback

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
    app = create_app(controller_settings(database_url, tmp_path))
    with TestClient(app, base_url=HTTPS) as client:
        admin = Api(client, ADMIN_SECRET)
        agent = Fleet(admin)
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
    with TestClient(create_app(settings), base_url=HTTPS) as client:
        admin = Api(client, ADMIN_SECRET)
        agent = Fleet(admin)
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


# ---- the keys that encrypt private keys at rest ------------------------------------------


def write_config(tmp: Path, database_url: str, **extra: Any) -> Path:
    path = tmp / "controller.yaml"
    data = {
        "database_url": database_url,
        "state_dir": str(tmp / "state"),
        "key_dir": str(tmp / "keys"),
        **extra,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def shoal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SHOAL, *args], capture_output=True, text=True, timeout=120, check=False)


def stored(database_url: str) -> dict[str, str]:
    """Every encrypted value in the database, by row."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        rows = {
            f"cert:{i}": v
            for i, v in conn.execute(text("SELECT id, private_key FROM certificates"))
        }
        rows |= {f"secret:{n}": v for n, v in conn.execute(text("SELECT name, value FROM secrets"))}
    engine.dispose()
    return rows


def populate(settings: ControllerSettings) -> tuple[str, str, str]:
    """Two certificates (an upload and one from the internal CA), and an L7 node that
    terminates TLS with the uploaded one. Returns the node's id, the certificate's id and
    the node's credential."""
    with TestClient(create_app(settings), base_url=HTTPS) as client:
        admin = Api(client, ADMIN_SECRET)
        agent = Fleet(admin)
        a = register(agent, "l7a", cluster="a", data_address="10.9.0.1", capacity=10)
        b = register(agent, "l7b", cluster="b", data_address="10.9.0.2", capacity=10)
        _, cert = tls_lb(admin, agent, [a, b], "shop.example")
        admin.ok(
            "POST",
            "/v2/shoal/certificates",
            {"certificate": {"issue": {"common_name": "internal.example", "days": 30}}},
        )
    return a["id"], cert["id"], agent.by_name["l7a"].secret


def bundles_of(settings: ControllerSettings, node_id: str, credential: str) -> dict[str, str]:
    """What the node is sent, by a controller started afresh on these settings."""
    with TestClient(create_app(settings), base_url=HTTPS) as client:
        agent = Api(client, credential)
        return dict(agent.ok("GET", f"/v2/shoal/nodes/{node_id}/desired-state")["certificates"])


def test_rotate_key_re_encrypts_everything_and_the_old_key_can_go(
    database_url: str, tmp_path: Path
) -> None:
    settings = controller_settings(database_url, tmp_path)
    node_id, cert_id, cred = populate(settings)
    (old_key,) = sorted((tmp_path / "keys").glob("*.key"))
    before = stored(database_url)
    assert {keyring.key_id_of(v) for v in before.values()} == {old_key.stem}
    assert all(PEM_KEY.decode() not in v for v in before.values())  # encrypted at rest
    sent = bundles_of(settings, node_id, cred)
    assert PEM_KEY.decode() in sent[cert_id]

    config = write_config(tmp_path, database_url)
    proc = shoal("controller", "rotate-key", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert f"{len(before)} stored secrets re-encrypted" in proc.stderr
    after = stored(database_url)
    assert set(after) == set(before)
    (new_kid,) = {keyring.key_id_of(v) for v in after.values()}
    assert new_kid != old_key.stem and new_kid > old_key.stem
    assert all(after[k] != before[k] for k in before)

    old_key.unlink()  # nothing needs it any more
    assert bundles_of(settings, node_id, cred) == sent
    listing = shoal("controller", "keys", "--config", str(config))
    assert listing.stdout.split() == [new_kid, str(len(before)), "active"]


def test_ciphertexts_from_before_key_ids_decrypt_and_are_migrated_on_rotate(
    database_url: str, tmp_path: Path
) -> None:
    """A database written by the previous version: SHA-256 of <state_dir>/secret.key, no
    key id in the ciphertext."""
    settings = controller_settings(database_url, tmp_path)
    node_id, cert_id, cred = populate(settings)
    legacy_secret = "old-random-secret"
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    legacy_file = settings.state_dir / "secret.key"
    legacy_file.write_text(legacy_secret)
    legacy_file.chmod(0o600)
    ring = keyring.load_keyring(settings)
    old = keyring._legacy(legacy_secret)
    engine = create_engine(database_url)
    with engine.begin() as conn:  # as the previous version stored them
        for table, column, key in (
            ("certificates", "private_key", "id"),
            ("secrets", "value", "name"),
        ):
            for ident, value in conn.execute(text(f"SELECT {key}, {column} FROM {table}")).all():
                legacy = old.encrypt(ring.decrypt(value)).decode()
                conn.execute(
                    text(f"UPDATE {table} SET {column} = :v WHERE {key} = :k"),
                    {"v": legacy, "k": ident},
                )
    engine.dispose()
    assert {keyring.key_id_of(v) for v in stored(database_url).values()} == {keyring.LEGACY}
    sent = bundles_of(settings, node_id, cred)
    assert PEM_KEY.decode() in sent[cert_id]

    config = write_config(tmp_path, database_url)
    proc = shoal("controller", "rotate-key", "--config", str(config), "--remove-old")
    assert proc.returncode == 0, proc.stderr
    assert not legacy_file.exists()
    assert keyring.LEGACY not in {keyring.key_id_of(v) for v in stored(database_url).values()}
    assert bundles_of(settings, node_id, cred) == sent


@pytest.mark.parametrize("damage", ["wrong key", "missing key"])
def test_rotate_with_a_wrong_or_missing_key_fails_clearly_and_changes_nothing(
    database_url: str, tmp_path: Path, damage: str
) -> None:
    settings = controller_settings(database_url, tmp_path)
    populate(settings)
    (key,) = (tmp_path / "keys").glob("*.key")
    if damage == "wrong key":
        key.write_bytes(Fernet.generate_key())
    else:
        key.rename(tmp_path / "elsewhere.key")
        # Another key, so the controller has one to encrypt with but not the one it needs.
        keyring.new_key_file(tmp_path / "keys")
    before = stored(database_url)
    keys_before = sorted(p.name for p in (tmp_path / "keys").iterdir())
    proc = shoal("controller", "rotate-key", "--config", str(write_config(tmp_path, database_url)))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert key.stem in line
    assert ("does not decrypt" if damage == "wrong key" else "does not have") in line
    assert stored(database_url) == before
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == keys_before


@pytest.mark.parametrize("target", ["key file", "key directory"])
def test_a_key_readable_by_others_is_refused(tmp_path: Path, target: str) -> None:
    settings = controller_settings(f"sqlite:///{tmp_path / 'c.db'}", tmp_path)
    with TestClient(create_app(settings), base_url=HTTPS) as client:
        admin = Api(client, ADMIN_SECRET)
        (key,) = (tmp_path / "keys").glob("*.key")
        assert key.stat().st_mode & 0o777 == 0o600
        assert key.parent.stat().st_mode & 0o777 == 0o700
        (key if target == "key file" else key.parent).chmod(
            0o644 if target == "key file" else 0o755
        )
        r = admin.request(
            "POST", "/v2/shoal/certificates", {"certificate": PKI.upload(PKI.leaf("x.example"))}
        )
        assert r.status_code == 500
        assert f"{target} " in r.json()["faultstring"]
        assert "accessible by group or others" in r.json()["faultstring"]
        assert r.json()["faultcode"] == "Server"
    proc = shoal(
        "controller", "rotate-key", "--config", str(write_config(tmp_path, settings.database_url))
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "accessible by group or others" in proc.stderr
    assert len(list((tmp_path / "keys").glob("*.key"))) == 1  # no new key next to an exposed one


def test_a_passphrase_is_stretched_with_scrypt_and_named_by_its_salt(tmp_path: Path) -> None:
    settings = controller_settings(
        f"sqlite:///{tmp_path / 'c.db'}", tmp_path, secret_key="correct horse battery staple"
    )
    ring = keyring.load_keyring(settings)
    assert not (tmp_path / "keys").exists()  # the passphrase encrypts; no key file is made
    token = ring.encrypt(b"secret")
    kid = keyring.key_id_of(token)
    assert kid.startswith("pw-") and len(bytes.fromhex(kid[3:])) == 16
    # Another controller process (another salt) with the same passphrase reads it.
    other = keyring.Keyring({}, "pw-" + "00" * 16, passphrase="correct horse battery staple")
    assert other.decrypt(token) == b"secret"
    wrong = keyring.Keyring({}, "pw-" + "00" * 16, passphrase="incorrect horse")
    with pytest.raises(keyring.KeyringError, match="does not decrypt with key pw-"):
        wrong.decrypt(token)


def test_the_default_layout_keeps_keys_out_of_the_state_directory(tmp_path: Path) -> None:
    default = ControllerSettings()
    assert default.state_dir == Path("/var/lib/shoal")
    assert default.key_directory == Path("/etc/shoal/keys")
    custom = ControllerSettings(state_dir=tmp_path / "state")
    assert custom.key_directory == tmp_path / "state-keys"
    assert not custom.key_directory.is_relative_to(custom.state_dir)
