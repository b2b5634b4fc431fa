"""The console's Keystone login in headless Chromium, against the package's real Keystone and
a controller with auth: keystone: a user, password and project log in and see that
project's load balancers only; a wrong password is the console's one readable line, in
place; a project observer sees but cannot create (the API's 403 line, in place)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.console.browser import chromium_page, need_browser

from .cloud import PASSWORD
from .conftest import Cloud


def _make_lb(cloud: Cloud, user: str, project: str, name: str) -> str:
    token = cloud.keystone.token(user, PASSWORD, project)
    body = {"loadbalancer": {"name": name, "vip_subnet_id": "default"}}
    r = httpx.post(
        f"{cloud.controller.url}/v2/lbaas/loadbalancers",
        json=body,
        headers={"X-Auth-Token": token},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["loadbalancer"]["id"])


def _keystone_login(page: Any, url: str, user: str, password: str, project: str) -> None:
    page.goto(f"{url}/ui/")
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Project").fill(project)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


@pytest.fixture
def page() -> Any:
    sync_api = need_browser()
    with chromium_page(sync_api) as p:
        yield p


def test_a_keystone_user_sees_only_their_projects_load_balancers(cloud: Cloud, page: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    mine = f"alpha-{tag}"
    theirs = f"beta-{tag}"
    _make_lb(cloud, "alice", "alpha", mine)
    _make_lb(cloud, "bob", "beta", theirs)
    _keystone_login(page, cloud.controller.url, "alice", PASSWORD, "alpha")
    assert re.search(r"/ui/loadbalancers$", page.url), page.locator("main").inner_text()
    listing = page.locator("main").inner_text()
    assert mine in listing and theirs not in listing
    # and not by guessing another project's page either
    other = page.goto(f"{cloud.controller.url}/ui/loadbalancers?name={theirs}")
    assert other is not None and theirs not in page.locator("main").inner_text()


def test_a_wrong_password_is_one_readable_line_in_place(cloud: Cloud, page: Any) -> None:
    _keystone_login(page, cloud.controller.url, "alice", "not-the-password", "alpha")
    assert "/ui/login" in page.url or "/ui/" in page.url
    alert = page.get_by_role("alert")
    assert alert.count() == 1
    line = alert.inner_text()
    assert "Keystone refused" in line and "\n" not in line.strip()
    assert page.get_by_label("User").count() == 1  # the form is still there to retry
    assert "not-the-password" not in page.content()


def test_a_keystone_observer_sees_but_cannot_create(cloud: Cloud, page: Any) -> None:
    name = f"seen-{uuid.uuid4().hex[:6]}"
    _make_lb(cloud, "alice", "alpha", name)
    _keystone_login(page, cloud.controller.url, "olga", PASSWORD, "alpha")
    assert name in page.locator("main").inner_text()
    page.goto(f"{cloud.controller.url}/ui/create")
    page.get_by_label("Name", exact=True).fill(f"nope-{uuid.uuid4().hex[:6]}")
    page.get_by_label("Kind").select_option("l4")
    for _ in range(4):
        page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Create").click()
    page.wait_for_load_state()
    alert = page.get_by_role("alert")
    assert alert.count() == 1 and "may not change resources" in alert.inner_text()
