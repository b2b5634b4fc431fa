"""Traffic from a lab client: HTTP requests, each on a fresh connection (a new flow), counted by
the backend that answered. Runs in the calling thread's network namespace."""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["HttpResult", "http_requests"]


@dataclass
class HttpResult:
    ok: int = 0
    failed: int = 0
    by_backend: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def http_get(host: str, port: int = 80, path: str = "/", timeout: float = 2.0) -> str:
    """One request on a new connection; returns the answering backend's name."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise OSError(f"HTTP {resp.status}")
        return str(json.loads(body)["backend"])
    finally:
        conn.close()


def http_requests(
    host: str,
    count: int,
    port: int = 80,
    *,
    timeout: float = 2.0,
    deadline: float = 60.0,
    progress: Callable[[int], None] | None = None,
) -> HttpResult:
    """count requests (bounded by deadline seconds in total)."""
    result = HttpResult()
    start = time.monotonic()
    for i in range(count):
        if time.monotonic() - start > deadline:
            result.failed += count - i
            result.errors["deadline"] += count - i
            break
        try:
            result.by_backend[http_get(host, port, timeout=timeout)] += 1
            result.ok += 1
        except (OSError, ValueError, KeyError) as exc:
            result.failed += 1
            result.errors[type(exc).__name__] += 1
        if progress:
            progress(i + 1)
    result.seconds = time.monotonic() - start
    return result
