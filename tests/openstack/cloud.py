"""A small OpenStack cloud for the client tests: a real Keystone (SQLite, one gunicorn worker,
127.0.0.1) whose catalog names a real Shoal controller (auth: keystone) as `load-balancer`
and `network`, and the users the tests act as."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent
HERE = Path(__file__).parent
ADMIN_PASSWORD = "keystone-admin-pw"
SERVICE_PASSWORD = "shoal-service-pw"
PASSWORD = "user-pw"
REGION = "RegionOne"
# name: (project, Keystone role)
USERS = {
    "alice": ("alpha", "load-balancer_member"),  # Octavia's own role
    "mona": ("alpha", "member"),  # secure-RBAC default role
    "olga": ("alpha", "load-balancer_observer"),
    "rita": ("alpha", "reader"),
    "gina": ("beta", "load-balancer_global_observer"),
    "bob": ("beta", "member"),
    "nora": ("alpha", "creator"),  # a role Octavia's policy does not know
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {seconds} s: {log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """The process this module started, by its pid (and its children, its group)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@dataclass
class Keystone:
    url: str  # .../v3
    admin_password: str = ADMIN_PASSWORD
    admin_token: str = ""
    ids: dict[str, str] = field(default_factory=dict)  # project/role/user names to ids

    def call(self, method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(
            method,
            f"{self.url}{path}",
            json=body,
            headers={"X-Auth-Token": self.admin_token},
            timeout=30,
        )
        if r.status_code >= 400:
            raise RuntimeError(f"keystone {method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    def token(self, user: str, password: str, project: str) -> str:
        r = httpx.post(
            f"{self.url}/auth/tokens",
            json={
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "name": user,
                                "domain": {"id": "default"},
                                "password": password,
                            }
                        },
                    },
                    "scope": {"project": {"name": project, "domain": {"id": "default"}}},
                }
            },
            timeout=30,
        )
        r.raise_for_status()
        return r.headers["x-subject-token"]

    def ensure(self, kind: str, name: str, **extra: Any) -> str:
        """The id of the project, role or user of that name, created if missing."""
        found = self.call("GET", f"/{kind}s?name={name}")[f"{kind}s"]
        if found:
            ident = str(found[0]["id"])
        else:
            ident = str(self.call("POST", f"/{kind}s", {kind: {"name": name, **extra}})[kind]["id"])
        self.ids[f"{kind}:{name}"] = ident
        return ident

    def grant(self, user: str, project: str, role: str) -> None:
        self.call(
            "PUT",
            f"/projects/{self.ids['project:' + project]}/users/"
            f"{self.ids['user:' + user]}/roles/{self.ids['role:' + role]}",
        )

    def add_service(self, kind: str, name: str, url: str) -> None:
        service = self.call("POST", "/services", {"service": {"type": kind, "name": name}})
        self.call(
            "POST",
            "/endpoints",
            {
                "endpoint": {
                    "service_id": service["service"]["id"],
                    "interface": "public",
                    "region_id": REGION,
                    "url": url,
                }
            },
        )

    def populate(self) -> None:
        self.admin_token = self.token("admin", ADMIN_PASSWORD, "admin")
        for project in ("admin", "service", "alpha", "beta"):
            self.ensure("project", project, domain_id="default")
        for role in {r for _, r in USERS.values()} | {"service", "admin"}:
            self.ensure("role", role)
        self.ensure("user", "admin")
        self.ensure("user", "shoal", password=SERVICE_PASSWORD, domain_id="default")
        self.grant("shoal", "service", "service")
        for user, (project, role) in USERS.items():
            self.ensure("user", user, password=PASSWORD, domain_id="default")
            self.grant(user, project, role)


def _keystone_conf(tmp: Path) -> Path:
    conf = tmp / "keystone.conf"
    conf.write_text(
        "[DEFAULT]\n"
        f"log_file = {tmp / 'keystone-app.log'}\n"
        "[database]\n"
        f"connection = sqlite:///{tmp / 'keystone.db'}\n"
        "[token]\n"
        "provider = fernet\n"
        "expiration = 3600\n"
        "[fernet_tokens]\n"
        f"key_repository = {tmp / 'fernet-keys'}\n"
        "[fernet_receipts]\n"
        f"key_repository = {tmp / 'fernet-receipts'}\n"
        "[credential]\n"
        f"key_repository = {tmp / 'credential-keys'}\n"
    )
    return conf


@contextlib.contextmanager
def keystone_server(tmp: Path) -> Iterator[Keystone]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v3"
    conf = _keystone_conf(tmp)
    manage = [str(BIN / "keystone-manage"), "--config-file", str(conf)]
    for step in (
        ["db_sync"],
        ["fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
        ["credential_setup", "--keystone-user", "root", "--keystone-group", "root"],
        [
            "bootstrap",
            "--bootstrap-password",
            ADMIN_PASSWORD,
            "--bootstrap-public-url",
            url,
            "--bootstrap-region-id",
            REGION,
        ],
    ):
        subprocess.run([*manage, *step], check=True, capture_output=True, timeout=300)
    log = tmp / "keystone.log"
    env = {**os.environ, "OS_KEYSTONE_CONFIG_FILES": str(conf)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "-w",
                "1",  # SQLite: one writer
                "-b",
                f"127.0.0.1:{port}",
                "--timeout",
                "120",
                "--pythonpath",
                str(HERE),
                "_keystone_app:application",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        wait_http(url, proc, log)
        keystone = Keystone(url)
        keystone.populate()
        yield keystone
    finally:
        stop(proc)


@dataclass
class Controller:
    url: str
    log: Path


@contextlib.contextmanager
def serve_controller(tmp: Path, settings: str) -> Iterator[Controller]:
    """`shoal controller serve` on a free loopback port with these extra YAML settings."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp / "controller.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nstate_dir: {tmp / 'state'}\npublic_url: {url}\n" + settings
    )
    log = tmp / "controller.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "shoal"), "controller", "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"{url}/healthcheck", proc, log)
        yield Controller(url, log)
    finally:
        stop(proc)


@contextlib.contextmanager
def controller_server(tmp: Path, keystone: Keystone) -> Iterator[Controller]:
    password = tmp / "keystone-password"
    password.write_text(SERVICE_PASSWORD + "\n")
    password.chmod(0o600)
    settings = (
        "auth: keystone\n"
        "keystone:\n"
        f"  auth_url: {keystone.url}\n"
        "  username: shoal\n"
        f"  password_file: {password}\n"
        "  cache_ttl: 60\n"
    )
    with serve_controller(tmp, settings) as controller:
        keystone.add_service("load-balancer", "octavia", controller.url)
        keystone.add_service("network", "shoal-vip-pools", controller.url)
        yield controller
