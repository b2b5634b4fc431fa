"""One Keystone and one Shoal controller (auth: keystone) for the whole package; the stock
clients run against them. Skipped where the OpenStack packages are not installed (the dev
extras pin them)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("keystone")
pytest.importorskip("openstackclient")
pytest.importorskip("octaviaclient")
pytest.importorskip("openstack")

from .cloud import PASSWORD, REGION, USERS, Controller, Keystone, controller_server, keystone_server

pytestmark = pytest.mark.openstack


@dataclass(frozen=True)
class Cloud:
    keystone: Keystone
    controller: Controller


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    tmp = tmp_path_factory.mktemp("cloud")
    with keystone_server(tmp) as keystone, controller_server(tmp, keystone) as controller:
        yield Cloud(keystone, controller)


@dataclass(frozen=True)
class CliResult:
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass(frozen=True)
class OpenStackCli:
    """`openstack ...` as one user, run in this process (the CLI's start-up dominates a
    subprocess; the command path is the same)."""

    cloud: Cloud
    user: str
    project: str
    password: str = PASSWORD

    def argv(self) -> list[str]:
        return [
            "--os-auth-url",
            self.cloud.keystone.url,
            "--os-identity-api-version",
            "3",
            "--os-username",
            self.user,
            "--os-password",
            self.password,
            "--os-project-name",
            self.project,
            "--os-user-domain-name",
            "Default",
            "--os-project-domain-name",
            "Default",
            "--os-region-name",
            REGION,
            "--os-interface",
            "public",
        ]

    def run(self, *args: str) -> CliResult:
        from openstackclient import shell

        _forget_plugin_clients()
        out, err = io.StringIO(), io.StringIO()
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = shell.main([*self.argv(), *args])
        finally:  # the CLI sets up logging for a process of its own: undo it
            root.handlers[:], root.level = handlers, level
        return CliResult(rc, out.getvalue(), err.getvalue())

    def ok(self, *args: str) -> Any:
        result = self.run(*args, *(("-f", "json") if _lists_or_shows(args) else ()))
        assert result.rc == 0, f"openstack {' '.join(args)}: {result.err[-2000:]}"
        return result.json() if result.out.strip() else None

    def refused(self, *args: str) -> str:
        result = self.run(*args)
        assert result.rc != 0, f"openstack {' '.join(args)} was not refused: {result.out}"
        return result.err


def _forget_plugin_clients() -> None:
    """The OpenStack client keeps each plugin's client (and so the previous user's session)
    in a class-level cache, made for one command per process: clear it between users."""
    from osc_lib.clientmanager import ClientCache, ClientManager

    for value in vars(ClientManager).values():
        if isinstance(value, ClientCache):
            value._handle = None


def _lists_or_shows(args: tuple[str, ...]) -> bool:
    verbs = ("list", "show", "create", "set", "stats")
    return any(a in verbs for a in args[:4]) and "-f" not in args


@pytest.fixture(scope="session")
def as_user(cloud: Cloud) -> Any:
    def make(user: str) -> OpenStackCli:
        project = "admin" if user == "admin" else USERS[user][0]
        password = cloud.keystone.admin_password if user == "admin" else PASSWORD
        return OpenStackCli(cloud, user, project, password)

    return make
