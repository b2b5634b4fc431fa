"""Shared test set-up: privilege checks and per-run unique names."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (BPF, XDP, network namespaces)")
    for item in items:
        if "bpf" in item.keywords or "netns" in item.keywords:
            item.add_marker(skip)
