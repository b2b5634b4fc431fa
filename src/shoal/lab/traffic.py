"""Traffic from a lab client: HTTP requests, each on a fresh connection (a new flow), counted by
the backend that answered. Runs in the calling thread's network namespace."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EchoSessions", "HttpResult", "HttpsAnswer", "http_requests", "https_get"]


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


@dataclass
class HttpsAnswer:
    status: int
    body: dict[str, Any]  # the lab servers' JSON ({} for anything else)
    headers: dict[str, str]  # lower-case names
    peer_name: str  # the certificate's common name


def https_get(
    address: str,
    server_name: str,
    path: str = "/",
    *,
    ca: str | None = None,
    headers: dict[str, str] | None = None,
    port: int = 443,
    timeout: float = 3.0,
) -> HttpsAnswer:
    """One request on a new TLS connection, with SNI; verified against `ca` (PEM) when
    given, unverified otherwise."""
    ctx = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
    if not ca:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    with (
        socket.create_connection((address, port), timeout=timeout) as raw,
        ctx.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        tls.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\n{extra}"
            "Connection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
        der = tls.getpeercert(binary_form=True)
    head, _, raw_body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    answer_headers = {
        k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
    }
    name = ""
    if der:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        attrs = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
            NameOID.COMMON_NAME
        )
        name = str(attrs[0].value) if attrs else ""
    body = json.loads(raw_body) if raw_body.startswith(b"{") else {}
    return HttpsAnswer(int(lines[0].split()[1]), body, answer_headers, name)


class EchoSessions:
    """Long-lived TCP connections through a VIP to the lab's echo service, each exchanging a
    line every `interval` seconds from one thread. A connection that is reset, closed or gets
    wrong bytes is broken; a slow answer is only a stall (TCP may retransmit through a
    failover), recorded as the longest wait."""

    def __init__(
        self,
        netns_name: str,
        host: str,
        count: int,
        port: int = 7,
        interval: float = 0.1,
        timeout: float = 10.0,
    ) -> None:
        from shoal import netns

        self.interval = interval
        self.backend_of: list[str] = []
        self.socks: list[socket.socket] = []
        with netns.entered(netns_name):
            for _ in range(count):
                s = socket.create_connection((host, port), timeout=timeout)
                greeting = s.makefile("rb").readline().decode().split()
                self.backend_of.append(greeting[-1] if greeting else "?")
                self.socks.append(s)
        self.broken: dict[int, str] = {}
        self.rounds = 0
        self.max_stall = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="echo-sessions", daemon=True)

    def _exchange(self, i: int, s: socket.socket) -> None:
        msg = f"{i}:{self.rounds}\n".encode()
        started = time.monotonic()
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            chunk = s.recv(len(msg) - len(got))
            if not chunk:
                raise OSError("closed by peer")
            got += chunk
        if got != msg:
            raise OSError(f"corrupted: {got!r}")
        self.max_stall = max(self.max_stall, time.monotonic() - started)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            for i, s in enumerate(self.socks):
                if i in self.broken:
                    continue
                try:
                    self._exchange(i, s)
                except OSError as exc:
                    self.broken[i] = f"{exc.__class__.__name__}: {exc}"
            self.rounds += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    @property
    def alive(self) -> int:
        return len(self.socks) - len(self.broken)

    def wait_rounds(self, n: int, timeout: float = 60.0) -> None:
        """Waits until every live connection has exchanged n more lines from now: proof that
        the flows carried traffic through what the test did, however slowly a loaded
        machine runs them (a fixed sleep proves nothing there)."""
        start = self.rounds
        deadline = time.monotonic() + timeout
        while self.rounds < start + n + 1:  # the round under way may have begun before now
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise AssertionError(
                    f"echo sessions: {self.rounds - start} of {n + 1} rounds in {timeout:.0f} s "
                    f"(longest stall {self.max_stall:.1f} s)"
                )
            time.sleep(0.05)

    def on(self, backend: str) -> list[int]:
        return [i for i, b in enumerate(self.backend_of) if b == backend]

    def __enter__(self) -> EchoSessions:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)
        for s in self.socks:
            s.close()
