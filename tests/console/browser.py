"""A live controller on loopback and headless Debian Chromium driven by Playwright, for
the console's end-to-end tests (no browser download: /usr/bin/chromium)."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from shoal.controller.app import create_app
from shoal.controller.settings import ControllerSettings

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out of this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


def need_browser() -> Any:
    """The sync Playwright API, or a skip when Playwright or Chromium is missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return sync_api


@contextmanager
def live_controller(settings: ControllerSettings) -> Iterator[str]:
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
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("controller did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"  # loopback: Chromium keeps Secure cookies here
    finally:
        server.should_exit = True
        thread.join(15)


@contextmanager
def chromium_page(sync_api: Any, *, lab_ca: bool = False) -> Iterator[Any]:
    """lab_ca: the lab controller's certificate is from the lab's own CA, which this
    throwaway browser profile does not trust."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1366, "height": 768}, ignore_https_errors=lab_ca
            )
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def shot(page: Any, name: str, enabled: bool) -> None:
    """A screenshot for docs/console.md (SHOAL_CONSOLE_SCREENSHOTS=1 writes them)."""
    if enabled:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def wait_until(check: Any, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def log_in(page: Any, live: str, token: str) -> None:
    page.goto(f"{live}/ui/")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    if not re.search(r"/ui/loadbalancers$", page.url):
        raise AssertionError(f"login failed at {page.url}: {page.locator('main').inner_text()}")


def wizard(
    page: Any, live: str, fields: dict[str, str], shots: str = "", provider: str = "noop"
) -> str:
    page.goto(f"{live}/ui/create")
    page.get_by_label("Name", exact=True).fill(fields["name"])
    page.get_by_label("Kind").select_option(fields["kind"])
    page.get_by_label("Provider").select_option(provider)
    if shots:
        shot(page, f"{shots}-1", True)
    page.get_by_role("button", name="Next").click()  # the script shows one step at a time
    page.get_by_label("Protocol", exact=True).select_option(fields["protocol"])
    page.get_by_label("Port", exact=True).fill(fields["port"])
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    page.get_by_label("One per line").fill(fields["members"])
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Type", exact=True).select_option(fields.get("hm", ""))
    if shots:
        shot(page, f"{shots}-5", True)
    # Each step waits for the nodes to apply the last: minutes on a loaded lab.
    with page.expect_navigation(timeout=300_000):
        page.get_by_role("button", name="Create").click()
    if not re.search(r"/ui/loadbalancers/[0-9a-f-]{36}$", page.url):
        raise AssertionError(f"the wizard stopped: {page.locator('main').inner_text()[:500]}")
    return str(page.url.rsplit("/", 1)[1])


def see_active(page: Any, timeout: float = 120) -> None:
    seen: list[str] = []

    def active() -> bool:
        page.reload()
        seen.append(page.locator("#provisioning").inner_text())
        return "ACTIVE" in seen[-1]

    try:
        wait_until(active, timeout, "the load balancer to be ACTIVE")
    except BaseException:
        raise AssertionError(f"not ACTIVE: last {seen[-1:]}; {page.url}") from None
