"""A controller (SQLite, noop provider enabled) for the console's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shoal.controller.app import create_app
from shoal.controller.settings import ControllerSettings, load_settings
from tests.api.helpers import ADMIN_SECRET, Api


@pytest.fixture
def settings(tmp_path: Path) -> ControllerSettings:
    return load_settings(
        database_url=f"sqlite:///{tmp_path / 'controller.db'}",
        state_dir=str(tmp_path),
        bootstrap_token=ADMIN_SECRET,
        enabled_providers=["shoal", "noop"],
        default_provider="noop",
    )


@pytest.fixture
def client(settings: ControllerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        yield c


@pytest.fixture
def admin(client: TestClient) -> Api:
    return Api(client, ADMIN_SECRET)
