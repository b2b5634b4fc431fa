"""The reconcile loop every agent runs: register, follow the controller's feed (a snapshot
first, then what changed since its position, by long poll), fold each answer into the state
it holds, apply that state, report; a side thread does what cannot wait for the long poll
(health results, events, local checks). A controller that cannot be reached is temporary:
the node keeps serving its last good state and the loop retries with backoff, on the next
controller when it was given several.

An agent that keeps its position (`keeps_position`) saves it with the load balancers it
holds after every applied answer, so a restart asks only for what changed meanwhile."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from shoal.agents.api import AgentApi, ControllerRefusedError, ControllerUnavailableError
from shoal.agents.files import private_dir, write_private
from shoal.agents.metrics import FeedMetrics, agent_registry
from shoal.agents.position import FeedStore
from shoal.agents.report_delta import ReportTracker
from shoal.errors import ShoalError
from shoal.wire.feed import DesiredState, Feed, LbState

__all__ = ["REDACTED", "AgentLoop"]

REDACTED = "(not cached: fetched from the controller)"


class AgentLoop(ABC):
    side_interval = 0.5
    role = "agent"
    log_each_below = 50  # a first state with more load balancers is logged as a summary
    keeps_position = False  # save the position and state on disk, resume from them

    def __init__(self, api: AgentApi, state_file: Path, poll_wait: float, log: logging.Logger):
        self.api = api
        self.node_id: str | None = None
        self.desired = DesiredState()
        self.errors: list[dict[str, Any]] = []  # per load balancer, for the next report
        self.registry = agent_registry(self.role)  # what /metrics serves
        self.feed = FeedMetrics(self.registry)
        self._revisions: dict[str, int] = {}  # load balancer -> revision applied and logged
        self._state_file = state_file
        self._poll_wait = poll_wait
        self._log = log
        self._stop = threading.Event()
        self._store: FeedStore | None = None
        self.last_touched: set[str] = set()  # what the last answer changed (for appliers)
        self.reports = ReportTracker()  # what the controller acknowledged (delta reports)
        self._traffic_at: float | None = None

    # Traffic (per load balancer, per backend) is for charts and stats: sent at most this
    # often, not with every change (at 10,000 load balancers it is most of a report).
    traffic_every = 5.0

    def _traffic_due(self) -> bool:
        """Whether this report carries traffic (and the next one due is traffic_every on)."""
        now = time.monotonic()
        if self._traffic_at is not None and now - self._traffic_at < self.traffic_every:
            return False
        self._traffic_at = now
        return True

    @property
    def seq(self) -> int:
        """The feed position of the state this node holds (-1: none yet)."""
        return self.desired.seq

    @abstractmethod
    def register(self) -> None:
        """Registers the node and sets node_id."""

    @abstractmethod
    def apply(self, desired: DesiredState) -> None:
        """Makes the node hold exactly this desired state (what cannot be applied is
        recorded for the next report, not raised)."""

    @abstractmethod
    def report(self) -> None: ...

    @abstractmethod
    def side_tick(self) -> None:
        """Twice a second, on the side thread."""

    @abstractmethod
    def prepare(self) -> None:
        """Before the first poll (e.g. attach the data plane, adopt a running proxy)."""

    def cache_desired(self, desired: DesiredState | dict[str, Any]) -> None:
        """The last applied state, for operators (nothing reads it back). Certificate
        bundles hold private keys, so only their ids are kept."""
        state = DesiredState.of(desired)
        cached = state.model_dump(mode="json")
        cached["certificates"] = {cid: REDACTED for cid in state.certificates}
        private_dir(self._state_file.parent)
        write_private(self._state_file, json.dumps(cached))

    def log_applied(self, desired: DesiredState, touched: set[str]) -> None:
        """One line per load balancer whose revision this node now runs (or refused), with
        the id of the API request that published it: a write can be followed from the
        controller's log to every node's."""
        refused = {e.get("load_balancer_id"): e.get("reason") for e in self.errors}
        entries = _touched_in_order(desired, touched)
        # A starting agent applies everything at once: one summary line, details at debug.
        first = not self._revisions and len(entries) > self.log_each_below
        level = logging.DEBUG if first else logging.INFO
        if first:
            self._log.info(
                "applied %d load balancer(s) at seq %s (%d refused)",
                len(desired.lbs) - len(refused),
                desired.seq,
                len(refused),
            )
        for lb_id in [k for k in touched if k not in desired.lbs]:
            self._revisions.pop(lb_id, None)
        for entry in entries:
            lb_id, revision = entry.id, entry.revision
            if self._revisions.get(lb_id) == revision and lb_id not in refused:
                continue
            fields = {
                "request_id": entry.request_id,
                "load_balancer_id": lb_id,
                "revision": revision,
                "seq": desired.seq,
            }
            rid = f" (request {entry.request_id})" if entry.request_id else ""
            if lb_id in refused:
                self._revisions.pop(lb_id, None)
                self._log.warning(
                    "refused load balancer %s revision %d%s: %s",
                    lb_id,
                    revision,
                    rid,
                    refused[lb_id],
                    extra=fields,
                )
                continue
            self._revisions[lb_id] = revision
            self._log.log(
                level, "applied load balancer %s revision %d%s", lb_id, revision, rid, extra=fields
            )

    def store(self) -> FeedStore:
        if self._store is None:
            self._store = FeedStore(self._state_file.with_suffix(".feed.db"))
        return self._store

    def resume(self) -> None:
        """The saved position and state, if this agent keeps them."""
        if self.keeps_position:
            self.desired = self.store().load()
            if self.desired.seq >= 0:
                self._log.info(
                    "resuming at feed position %d (%d load balancers saved)",
                    self.desired.seq,
                    len(self.desired.lbs),
                )

    def follow(self) -> None:
        """One round: ask for what changed, fold it in, apply, save, report."""
        known = self.desired.seq >= 0
        feed: Feed = self.api.feed(
            self.node_id or "",
            position=max(self.desired.seq, 0),
            wait=self._poll_wait if known else 0,
        )
        if feed.changed:
            self.feed.behind()
            touched = self.desired.merge(feed)
            if feed.snapshot:
                self.reports.reset()  # a new base: report all of it
            self.last_touched = touched
            with self.feed.applying():
                self.apply(self.desired)
            self.log_applied(self.desired, touched)
            if self.keeps_position:
                self.store().save(self.desired, touched, feed.snapshot)
            else:
                self.cache_desired(self.desired)
        self.feed.in_sync(self.desired.seq)
        self.report()

    def forget(self) -> None:
        """Starts over from a snapshot (the node was deleted on the controller)."""
        self.node_id = None
        self.reports.reset()
        self.desired = DesiredState(lbs=self.desired.lbs)  # keep serving meanwhile
        if self.keeps_position:
            self.store().forget()

    def _side_loop(self) -> None:
        while not self._stop.wait(self.side_interval):
            if self.node_id is None:
                continue
            try:
                self.side_tick()
            except (ControllerUnavailableError, ControllerRefusedError) as exc:
                self._log.debug("side loop: %s", exc)
            except ShoalError as exc:
                self._log.warning("side loop: %s", exc)

    def run(self) -> None:
        self.prepare()
        self.resume()
        if self.desired.seq >= 0:
            self.apply(self.desired)  # health checks, announcements, digests: as before
        side = threading.Thread(target=self._side_loop, name="agent-side", daemon=True)
        side.start()
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if self.node_id is None:
                    self.register()
                self.follow()
                backoff = 0.5
            except ControllerUnavailableError as exc:
                self.feed.behind()
                self._log.warning(
                    "%s; serving the last good state, retrying in %.1f s", exc, backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except ControllerRefusedError as exc:
                self.feed.behind()
                if exc.status == 404:  # the node was deleted: register again
                    self.forget()
                self._log.error("%s", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except ShoalError as exc:
                self.feed.behind()
                self._log.error("cannot apply seq: %s", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        side.join(2)
        if self._store is not None:
            self._store.close()


def _touched_in_order(desired: DesiredState, touched: set[str]) -> list[LbState]:
    """The touched load balancers still present, in the state's order. merge() re-inserts
    what an answer carries last, so after a delta they are the state's tail: read from the
    end, a change costs what it touched, not a pass over 10,000 load balancers."""
    lbs = desired.lbs
    present = sum(1 for k in touched if k in lbs)
    tail = list(itertools.islice(reversed(lbs.values()), present))
    if all(lb.id in touched for lb in tail):
        return tail[::-1]
    return [lb for lb_id, lb in lbs.items() if lb_id in touched]
