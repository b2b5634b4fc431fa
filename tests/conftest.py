"""Shared test set-up: privilege checks and per-run unique names."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Minutes-long suites run only when asked for (`make test-scale`), never in `make test`.
    if os.environ.get("SHOAL_TEST_SCALE") != "1":
        heavy = pytest.mark.skip(reason="a whole bench run: make test-scale")
        for item in items:
            if "scale" in item.keywords:
                item.add_marker(heavy)
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (BPF, XDP, network namespaces)")
    for item in items:
        if "bpf" in item.keywords or "netns" in item.keywords:
            item.add_marker(skip)
