"""What every agent exports to Prometheus: its feed position, how far behind the feed it may
be, how long applying takes, and a small HTTP listener serving `/metrics` (off unless an
address is given; the operator chooses where: loopback, or the management network).

The listener serves only GET /metrics, answers anything else with 404, and reads no request
body. With a scrape token (a 0600 file) it answers only a request bearing that token
(`Authorization: Bearer` or `X-Auth-Token`, compared in constant time) and gives anyone else
a bodiless-looking 401. It refuses to start on a non-loopback address without a token unless
the operator says --metrics-insecure: counters name VIPs, backends and peers, which an
attacker on the management network should not map for free."""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from shoal import __version__
from shoal.errors import ConfigError

__all__ = [
    "FeedMetrics",
    "MetricsServer",
    "agent_registry",
    "check_exposure",
    "parse_listen",
    "presented_token",
]

# No `_created` series: they double every counter's series and Prometheus 2 ignores them.
disable_created_metrics()  # type: ignore[no-untyped-call]
log = logging.getLogger("shoal.agent.metrics")

# Applying: milliseconds for a member change, seconds for a HAProxy reload under load.
APPLY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def agent_registry(role: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    info = Gauge(
        "shoal_agent_build_info",
        "The agent's version and role.",
        ["version", "role"],
        registry=registry,
    )
    info.labels(__version__, role).set(1)
    return registry


class FeedMetrics:
    """The agent's position in the controller's feed.

    Lag: 0 while the agent holds everything the controller has told it and waits in a long
    poll (the controller answers as soon as something changes); otherwise the seconds since
    it last held everything (a change being applied, a failed apply, an unreachable
    controller)."""

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.position = Gauge(
            "shoal_agent_feed_position",
            "The feed position (controller change number) this node applied last.",
            registry=registry,
        )
        self.lag = Gauge(
            "shoal_agent_feed_lag_seconds",
            "Seconds this node may be behind the controller's feed (0: in sync).",
            registry=registry,
        )
        self.lag.set_function(self.lag_seconds)
        self.apply_duration = Histogram(
            "shoal_agent_apply_duration_seconds",
            "Time to apply one answer of the feed that changed something.",
            buckets=APPLY_BUCKETS,
            registry=registry,
        )
        self.applies = Counter(
            "shoal_agent_applies",
            "Feed answers applied, by result (ok, error).",
            ["result"],
            registry=registry,
        )
        for result in ("ok", "error"):
            self.applies.labels(result)
        self._behind_since: float | None = clock()  # nothing applied yet
        self._lock = threading.Lock()

    def lag_seconds(self) -> float:
        with self._lock:
            since = self._behind_since
        return 0.0 if since is None else max(0.0, self.clock() - since)

    def behind(self) -> None:
        """A change arrived, an apply failed or the controller cannot be reached."""
        with self._lock:
            if self._behind_since is None:
                self._behind_since = self.clock()

    def in_sync(self, position: int) -> None:
        with self._lock:
            self._behind_since = None
        self.position.set(position)

    @contextlib.contextmanager
    def applying(self) -> Iterator[None]:
        started = self.clock()
        try:
            yield
        except BaseException:
            self.applies.labels("error").inc()
            raise
        self.apply_duration.observe(self.clock() - started)
        self.applies.labels("ok").inc()


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
        raise ConfigError(f"metrics listen address {text!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_exposure(listen: str, token: str | None, insecure: bool) -> None:
    """Off loopback, metrics need a scrape token, or the operator's explicit --metrics-insecure."""
    host, _ = parse_listen(listen)
    if token is None and not insecure and not _loopback(host):
        raise ConfigError(
            f"metrics on {listen} (not loopback) need --metrics-token-file, "
            "or --metrics-insecure on a network only the scrapers reach"
        )


def presented_token(headers: Any) -> str | None:
    """The token a scraper sent: `Authorization: Bearer <token>` (Prometheus's
    authorization/credentials_file) or `X-Auth-Token`."""
    auth = headers.get("Authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return str(value.strip())
    token = headers.get("X-Auth-Token")
    return str(token).strip() if token else None


class MetricsServer:
    """GET /metrics: the registry, then what `extra` returns (already in the text format);
    with a token, only for requests bearing it."""

    def __init__(
        self,
        listen: str,
        registry: CollectorRegistry,
        extra: Callable[[], bytes] | None = None,
        *,
        token: str | None = None,
        insecure: bool = False,
    ) -> None:
        check_exposure(listen, token, insecure)
        host, port = parse_listen(listen)
        handler = _handler(registry, extra, token)
        server_cls: type[ThreadingHTTPServer] = _Server6 if ":" in host else _Server4
        try:
            self.server = server_cls((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {listen}: {exc.strerror}") from None
        self.address = self.server.server_address
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="metrics", daemon=True
        )

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics on http://%s:%s/metrics", *self.address[:2])
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Server4(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server4):
    address_family = socket.AF_INET6


def _handler(
    registry: CollectorRegistry, extra: Callable[[], bytes] | None, token: str | None
) -> type[BaseHTTPRequestHandler]:
    expected = token.encode() if token else None

    class Handler(BaseHTTPRequestHandler):
        def _authorized(self) -> bool:
            if expected is None:
                return True
            presented = presented_token(self.headers)
            return presented is not None and hmac.compare_digest(expected, presented.encode())

        def do_GET(self) -> None:
            if not self._authorized():  # before routing: a prober learns nothing, not even paths
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer realm="shoal-agent-metrics"')
                self.send_header("Content-Type", "text/plain")
                body = b"a scrape token is needed\n"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if self.path.split("?", 1)[0] != "/metrics":
                self._answer(404, b"only /metrics here\n", "text/plain")
                return
            try:
                body = generate_latest(registry)
                if extra is not None:
                    body += extra()
            except Exception:  # a scrape never takes the agent down
                log.exception("metrics scrape failed")
                self._answer(500, b"scrape failed, see the agent's log\n", "text/plain")
                return
            self._answer(200, body, CONTENT_TYPE_LATEST)

        def _answer(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics %s %s", self.address_string(), format % args)

    return Handler
