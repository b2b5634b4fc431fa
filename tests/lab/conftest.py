"""The whole system in namespaces: router, two L4 nodes, three backends, client, controller.
Built once for this package; every figure the tests measure is printed at the end."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shoal.lab.lab import Lab, LabSpec

pytestmark = pytest.mark.netns
FIGURES: dict[str, Any] = {}
FAILED: list[str] = []  # node ids of the tests that failed: the lab keeps its logs then


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    outcome: Any = yield
    if outcome.get_result().failed:
        FAILED.append(item.nodeid)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("lab figures")
        for key, value in FIGURES.items():
            terminalreporter.write_line(f"{key}: {value}")


@pytest.fixture(scope="package")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    spec = LabSpec(prefix=f"sl{os.getpid() % 100000}")
    if os.environ.get("SHOAL_LAB_BEFORE") == "1":
        # The lab as it was before issue 12 (items 2, 5, 7): the router reuses the client
        # socket's hash, no fate watchdog, no BFD hold-down. For "before" figures only.
        spec.router_hash, spec.fate_watchdog, spec.bfd_hold_down = "socket", False, 0.0
    lab = Lab(spec)
    lab.up()
    try:
        yield lab
    finally:
        # A failure is read from the daemons' logs (BIRD, agents, controller): keep them.
        lab.down(quiet=True, keep_logs=bool(FAILED))
        if FAILED:
            FIGURES["logs kept (a test failed)"] = str(lab.dir / "logs")


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> float:
    """Seconds until predicate() held; fails the test after timeout."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - start
