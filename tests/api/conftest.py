"""Controller fixtures: every API test runs against SQLite and against a throwaway
PostgreSQL (started once per session, a fresh database per test)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from shoal.controller.app import create_app
from shoal.controller.settings import ControllerSettings, load_settings
from shoal.lab.postgres import throwaway_postgres

from .helpers import ADMIN_SECRET, Api, Fleet

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("a throwaway PostgreSQL needs root (runuser postgres)")
    with throwaway_postgres("shoal_template") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'controller.db'}"
    server: str = request.getfixturevalue("postgres_server")
    name = f"t{os.getpid()}_{next(_db_counter)}"
    base = server.rsplit("/", 1)[0]
    with psycopg.connect(
        base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def make_settings(database_url: str, tmp_path: Path, **extra: object) -> ControllerSettings:
    return load_settings(
        database_url=database_url, state_dir=str(tmp_path), bootstrap_token=ADMIN_SECRET, **extra
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> ControllerSettings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
def client(settings: ControllerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        yield c


@pytest.fixture
def admin(client: TestClient) -> Api:
    return Api(client, ADMIN_SECRET)


@pytest.fixture
def alice(admin: Api) -> Api:
    """A member of project alpha."""
    return admin.with_token(admin.token("alice", "alpha", "member"))


@pytest.fixture
def bob(admin: Api) -> Api:
    """A member of project beta."""
    return admin.with_token(admin.token("bob", "beta", "member"))


@pytest.fixture
def agent(admin: Api) -> Fleet:
    """The nodes' agents, each enrolled with its own credential on first registration."""
    return Fleet(admin)


@pytest.fixture
def alice_secret(admin: Api) -> str:
    return admin.token("alice", "alpha", "member")


@pytest.fixture
def live_server(settings: ControllerSettings) -> Iterator[str]:
    """The controller on a real socket (uvicorn in a thread), for concurrency tests."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("controller did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
