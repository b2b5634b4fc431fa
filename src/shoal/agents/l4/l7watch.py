"""The L4 node's own check of the L7 nodes it sends VIP traffic to. The controller's verdict
on an L7 node takes its checks' rise/fall, a report and a long poll (1.6 s in the lab); every
new connection hashed to a dead proxy meanwhile is lost. So each L4 node also connects to every
L7 node's monitor endpoint (HAProxy's `monitor-uri` frontend) every `interval`, and after
`fall` failures in a row takes the node out of its own data plane at once (the VIP's backend
turns unhealthy: no new flows, its flows re-hashed); after `rise` successes it puts it back.
The controller still decides for the whole tier; this only acts sooner, and never marks a
node healthy that the controller says is down.

A TCP connect is enough: HAProxy not running means nothing listens there (refused at once),
a frozen or unreachable node means no answer (the timeout)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shoal.wire.feed import DesiredState, LbState

__all__ = ["L7Target", "L7Watch", "mark_dead", "targets_from", "tcp_probe"]

log = logging.getLogger("shoal.agent.l4.l7watch")

Probe = Callable[[str, int, float], bool]


@dataclass(frozen=True)
class L7Target:
    address: str
    port: int


def tcp_probe(address: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def targets_from(desired: DesiredState | dict[str, Any], default_port: int) -> dict[str, L7Target]:
    """Node id -> monitor endpoint of every L7 node a load balancer of this state is placed
    on; the port from the node's check when the controller lists one, else default_port."""
    state = DesiredState.of(desired)
    ports = {c.node_id: c.port for c in state.node_checks}
    out = {}
    for lb in state.lbs.values():
        for node in lb.l7_nodes or []:
            out[node.id] = L7Target(node.address, ports.get(node.id, default_port))
    return out


def mark_dead(desired: DesiredState | dict[str, Any], dead: set[str]) -> DesiredState:
    """The desired state with the dead L7 nodes' placements unhealthy (copied where changed,
    so the translation cache sees a new fingerprint for exactly those load balancers). When
    this node sees every healthy placement of a load balancer dead, the fault is more likely
    its own (its link, its probes) than the whole tier's: it then keeps the controller's view
    rather than drop all of that load balancer's traffic."""
    state = DesiredState.of(desired)
    if not dead:
        return state
    lbs: dict[str, LbState] = {}
    for lb_id, lb in state.lbs.items():
        nodes = lb.l7_nodes or []
        healthy = {n.id for n in nodes if n.healthy}
        if healthy and healthy & dead and healthy - dead:
            marked = [n.model_copy(update={"healthy": False}) if n.id in dead else n for n in nodes]
            lb = lb.model_copy(update={"l7_nodes": marked})
        lbs[lb_id] = lb
    return state.model_copy(update={"lbs": lbs})


class L7Watch:
    """Probes the targets on its own thread; calls on_change(dead node ids) from that thread
    whenever the set changes."""

    def __init__(
        self,
        on_change: Callable[[set[str]], None],
        *,
        interval: float = 0.1,
        timeout: float = 0.15,
        fall: int = 2,
        rise: int = 2,
        probe: Probe = tcp_probe,
    ) -> None:
        self.on_change = on_change
        self.interval, self.timeout, self.fall, self.rise = interval, timeout, fall, rise
        self.probe = probe
        self._targets: dict[str, L7Target] = {}
        self._streak: dict[str, int] = {}  # > 0: successes in a row, < 0: failures
        self._dead: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def update(self, targets: dict[str, L7Target]) -> None:
        with self._lock:
            self._targets = dict(targets)
            for gone in set(self._streak) - set(targets):
                del self._streak[gone]
            self._dead &= set(targets)
        if targets and self._thread is None:
            self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="l7watch")
            self._thread = threading.Thread(target=self._loop, name="l7watch", daemon=True)
            self._thread.start()

    def dead(self) -> set[str]:
        with self._lock:
            return set(self._dead)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        """One round of probes (all at once), then the verdicts."""
        with self._lock:
            targets = dict(self._targets)
        if not targets or self._pool is None:
            return
        futures = {
            node_id: self._pool.submit(self.probe, t.address, t.port, self.timeout)
            for node_id, t in targets.items()
        }
        results = {node_id: f.result() for node_id, f in futures.items()}
        changed = None
        with self._lock:
            for node_id, ok in results.items():
                if node_id not in self._targets:
                    continue
                streak = self._streak.get(node_id, 0)
                streak = max(streak, 0) + 1 if ok else min(streak, 0) - 1
                self._streak[node_id] = streak
                if ok and node_id in self._dead and streak >= self.rise:
                    self._dead.discard(node_id)
                    changed = set(self._dead)
                elif not ok and node_id not in self._dead and -streak >= self.fall:
                    self._dead.add(node_id)
                    changed = set(self._dead)
        if changed is not None:
            try:
                self.on_change(changed)
            except Exception:  # the watch must outlive a failed apply; the next poll retries
                log.exception("applying L7 node health failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
