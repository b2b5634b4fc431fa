"""Health checks run by an agent for the pools the controller assigns to its node. The agent
only measures; the controller decides up/down from consecutive results (max_retries,
max_retries_down) so every node agrees."""

from __future__ import annotations

import contextlib
import heapq
import http.client
import os
import queue
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shoal.dataplane import packets
from shoal.wire.feed import DesiredState, LbState

__all__ = [
    "CheckCache",
    "CheckSpec",
    "HealthScheduler",
    "codes_match",
    "lb_check_specs",
    "node_check_specs",
    "run_check",
    "specs_from",
]


@dataclass(frozen=True)
class CheckSpec:
    member_id: str
    address: str
    port: int
    type: str  # TCP, HTTP, HTTPS, TLS-HELLO, UDP-CONNECT, PING
    delay: float
    timeout: float
    url_path: str = "/"
    http_method: str = "GET"
    expected_codes: str = "200"
    domain_name: str | None = None
    subject: str = "member_id"  # or node_id: an L4 node checking an L7 node


CheckCache = dict[str, tuple[LbState, list[CheckSpec]]]


def lb_check_specs(lb: LbState) -> list[CheckSpec]:
    out = []
    assigned = set(lb.health_checks)
    for pool in lb.config.pools:
        hm = pool.healthmonitor
        if pool.id not in assigned or hm is None or not hm.admin_state_up:
            continue
        for m in pool.members:
            if not m.admin_state_up:
                continue
            out.append(
                CheckSpec(
                    member_id=m.id,
                    address=m.monitor_address or m.address,
                    port=m.monitor_port or m.protocol_port,
                    type=hm.type,
                    # Octavia allows 0: probe at most once a second, wait at least 1 s.
                    delay=max(1.0, float(hm.delay)),
                    timeout=max(1.0, float(hm.timeout)),
                    url_path=hm.url_path or "/",
                    http_method=hm.http_method or "GET",
                    expected_codes=hm.expected_codes or "200",
                    domain_name=hm.domain_name,
                )
            )
    return out


def specs_from(desired: DesiredState, cache: CheckCache | None = None) -> list[CheckSpec]:
    """The checks this node must run: members of the pools listed in health_checks, and
    the monitor endpoints of the L7 nodes listed in node_checks. With a cache, a load
    balancer whose LbState object is unchanged is not looked at again."""
    out: list[CheckSpec] = []
    fresh: CheckCache = {}
    for lb in desired.lbs.values():
        hit = cache.get(lb.id) if cache is not None else None
        specs = hit[1] if hit is not None and hit[0] is lb else lb_check_specs(lb)
        fresh[lb.id] = (lb, specs)
        out.extend(specs)
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    out.extend(node_check_specs(desired))
    return out


def node_check_specs(desired: DesiredState) -> list[CheckSpec]:
    """The monitor endpoints of the L7 nodes this (L4) node checks."""
    return [
        CheckSpec(
            member_id=check.node_id,
            address=check.address,
            port=check.port,
            type="HTTP",
            delay=float(check.interval),
            timeout=max(0.2, min(1.0, float(check.interval))),
            url_path="/healthz",
            subject="node_id",
        )
        for check in desired.node_checks
    ]


def codes_match(expected: str, status: int) -> bool:
    """Octavia's expected_codes: "200", "200,202,204" or "200-299"."""
    for part in expected.split(","):
        if "-" in part:
            low, high = part.split("-", 1)
            if int(low) <= status <= int(high):
                return True
        elif part.strip() and int(part) == status:
            return True
    return False


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _tcp(spec: CheckSpec) -> tuple[bool, str]:
    with socket.create_connection((spec.address, spec.port), timeout=spec.timeout):
        return True, ""


def _http(spec: CheckSpec) -> tuple[bool, str]:
    conn: http.client.HTTPConnection
    if spec.type == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # liveness, not identity
        conn = http.client.HTTPSConnection(
            spec.address, spec.port, timeout=spec.timeout, context=ctx
        )
    else:
        conn = http.client.HTTPConnection(spec.address, spec.port, timeout=spec.timeout)
    try:
        headers = {"Host": spec.domain_name} if spec.domain_name else {}
        conn.request(spec.http_method, spec.url_path, headers=headers)
        status = conn.getresponse().status
    finally:
        conn.close()
    if codes_match(spec.expected_codes, status):
        return True, ""
    return False, f"HTTP {status}, expected {spec.expected_codes}"


def _tls_hello(spec: CheckSpec) -> tuple[bool, str]:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection((spec.address, spec.port), timeout=spec.timeout) as raw,
        ctx.wrap_socket(raw, server_hostname=spec.domain_name or spec.address),
    ):
        return True, ""


def _udp(spec: CheckSpec) -> tuple[bool, str]:
    """Up unless the member answers with ICMP port unreachable (Octavia's UDP-CONNECT)."""
    with socket.socket(_family(spec.address), socket.SOCK_DGRAM) as s:
        s.settimeout(spec.timeout)
        s.connect((spec.address, spec.port))
        s.send(b"shoal-health-check")
        with contextlib.suppress(TimeoutError):
            s.recv(512)
        return True, ""


def _ping(spec: CheckSpec) -> tuple[bool, str]:
    v6 = ":" in spec.address
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    ident = os.getpid() & 0xFFFF
    with socket.socket(_family(spec.address), socket.SOCK_RAW, proto) as s:
        s.settimeout(spec.timeout)
        kind = 128 if v6 else 8
        header = struct.pack("!BBHHH", kind, 0, 0, ident, 1)
        payload = b"shoal"
        checksum = 0 if v6 else packets.checksum(header + payload)  # the kernel fills ICMPv6's
        s.sendto(struct.pack("!BBHHH", kind, 0, checksum, ident, 1) + payload, (spec.address, 0))
        deadline = time.monotonic() + spec.timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            packet, _ = s.recvfrom(2048)
            icmp = packet if v6 else packet[(packet[0] & 0x0F) * 4 :]
            reply = 129 if v6 else 0
            if icmp[0] == reply and struct.unpack("!H", icmp[4:6])[0] == ident:
                return True, ""
    return False, "no echo reply"


CHECKS: dict[str, Callable[[CheckSpec], tuple[bool, str]]] = {
    "TCP": _tcp,
    "HTTP": _http,
    "HTTPS": _http,
    "TLS-HELLO": _tls_hello,
    "UDP-CONNECT": _udp,
    "PING": _ping,
}


def run_check(spec: CheckSpec) -> tuple[bool, str]:
    check = CHECKS.get(spec.type)
    if check is None:
        return False, f"{spec.type} checks are not supported here"
    try:
        return check(spec)
    except TimeoutError:
        return False, f"timed out after {spec.timeout:g} s"
    except ConnectionRefusedError:
        return False, "connection refused"
    except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as exc:
        return False, f"{exc.__class__.__name__}: {exc}"[:300]


_TICK = 0.05  # seconds between looks at what is due


class HealthScheduler:
    """Runs each member's check every `delay` seconds on a thread pool; results queue up for
    the agent to send in batches. What is due comes off a heap of (due time, member), so a
    tick costs the checks due, not every check planned (100,000 members at 10,000 load
    balancers); _due holds each member's one valid time, older heap entries are skipped."""

    def __init__(self, workers: int = 32) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="health")
        self._specs: dict[str, CheckSpec] = {}
        self._owned: dict[str, list[CheckSpec]] = {}  # replace(): owner -> its checks
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self.results: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="health-scheduler", daemon=True)
        self._thread.start()

    def update(self, specs: Iterable[CheckSpec]) -> None:
        """Runs exactly these checks from now on."""
        with self._lock:
            gone = [k for k in self._owned if k]
        self.replace({"": list(specs)}, gone)

    def replace(self, owners: Mapping[str, Sequence[CheckSpec]], gone: Iterable[str] = ()) -> None:
        """Replaces the checks of some owners (a load balancer, the node's L7 checks), at the
        cost of those: the same as update() with every owner's checks, when each member has
        one owner. A member that stays keeps its schedule; a new one is checked at once."""
        with self._lock:
            before: dict[str, CheckSpec] = {}
            for owner in [*gone, *owners]:
                for spec in self._owned.pop(owner, ()):
                    if self._specs.get(spec.member_id) is spec:
                        before[spec.member_id] = self._specs.pop(spec.member_id)
            now = time.monotonic()
            for owner, specs in owners.items():
                if specs:
                    self._owned[owner] = list(specs)
                for spec in specs:
                    if spec.member_id not in before and spec.member_id not in self._specs:
                        self._schedule(spec.member_id, now)
                    self._specs[spec.member_id] = spec
            for member_id in before:
                if member_id not in self._specs:
                    self._due.pop(member_id, None)

    def planned(self) -> dict[str, CheckSpec]:
        """Member (or node) id -> the check this scheduler runs for it."""
        with self._lock:
            return dict(self._specs)

    def drain(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self.results.get_nowait())
            except queue.Empty:
                return out

    def _schedule(self, member_id: str, at: float) -> None:
        self._due[member_id] = at
        heapq.heappush(self._heap, (at, member_id))

    def take_due(self, now: float) -> list[CheckSpec]:
        """The checks due at now, marked running and scheduled for their next round. One
        still running is looked at again next tick, as before."""
        due: list[CheckSpec] = []
        later: list[str] = []
        with self._lock:
            heap = self._heap
            while heap and heap[0][0] <= now:
                at, m = heapq.heappop(heap)
                if self._due.get(m) != at:
                    continue  # rescheduled or no longer planned
                if m in self._running:
                    later.append(m)
                    continue
                spec = self._specs[m]
                self._schedule(m, now + spec.delay)
                self._running.add(m)
                due.append(spec)
            for m in later:
                self._schedule(m, now + _TICK)
            if len(heap) > 2 * len(self._due) + 64:  # stale entries: rebuild, O(planned)
                self._heap = [(t, m) for m, t in self._due.items()]
                heapq.heapify(self._heap)
        return due

    def _loop(self) -> None:
        while not self._stop.wait(_TICK):
            for spec in self.take_due(time.monotonic()):
                self._pool.submit(self._run, spec)

    def _run(self, spec: CheckSpec) -> None:
        try:
            ok, detail = run_check(spec)
            self.results.put({spec.subject: spec.member_id, "ok": ok, "detail": detail})
        finally:
            self.finished(spec.member_id)

    def finished(self, member_id: str) -> None:
        """A check taken by take_due() is over: the member may be taken again."""
        with self._lock:
            self._running.discard(member_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._pool.shutdown(wait=False, cancel_futures=True)
