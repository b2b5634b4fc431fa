"""The reconcile loop every agent runs: register, long-poll the controller for the complete
desired state, apply it, report; a side thread does what cannot wait for the long poll
(health results, events, local checks). A controller that cannot be reached is temporary:
the node keeps serving its last good state and the loop retries with backoff."""

from __future__ import annotations

import json
import logging
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from shoal.agents.api import AgentApi, ControllerRefusedError, ControllerUnavailableError
from shoal.agents.files import private_dir, write_private
from shoal.agents.metrics import FeedMetrics, agent_registry
from shoal.errors import ShoalError

__all__ = ["REDACTED", "AgentLoop"]

REDACTED = "(not cached: fetched from the controller)"


class AgentLoop(ABC):
    side_interval = 0.5
    role = "agent"
    log_each_below = 50  # a first state with more load balancers is logged as a summary

    def __init__(self, api: AgentApi, state_file: Path, poll_wait: float, log: logging.Logger):
        self.api = api
        self.node_id: str | None = None
        self.seq = -1
        self.errors: list[dict[str, Any]] = []  # per load balancer, for the next report
        self.registry = agent_registry(self.role)  # what /metrics serves
        self.feed = FeedMetrics(self.registry)
        self._revisions: dict[str, int] = {}  # load balancer -> revision applied and logged
        self._state_file = state_file
        self._poll_wait = poll_wait
        self._log = log
        self._stop = threading.Event()

    @abstractmethod
    def register(self) -> None:
        """Registers the node and sets node_id."""

    @abstractmethod
    def apply(self, desired: dict[str, Any]) -> None:
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

    def cache_desired(self, desired: dict[str, Any]) -> None:
        """The last applied state, for operators (nothing reads it back: a starting agent
        fetches everything again). Certificate bundles hold private keys, so only their ids
        are kept."""
        cached = dict(desired)
        if "certificates" in cached:
            cached["certificates"] = {cid: REDACTED for cid in cached["certificates"]}
        private_dir(self._state_file.parent)
        write_private(self._state_file, json.dumps(cached))

    def log_applied(self, desired: dict[str, Any]) -> None:
        """One line per load balancer whose revision this node now runs (or refused), with
        the id of the API request that published it: a write can be followed from the
        controller's log to every node's."""
        refused = {e.get("load_balancer_id"): e.get("reason") for e in self.errors}
        entries = desired.get("load_balancers", [])
        # A starting agent applies everything at once: one summary line, details at debug.
        first = not self._revisions and len(entries) > self.log_each_below
        level = logging.DEBUG if first else logging.INFO
        if first:
            self._log.info(
                "applied %d load balancer(s) at seq %s (%d refused)",
                len(entries) - len(refused),
                desired.get("seq"),
                len(refused),
            )
        seen: dict[str, int] = {}
        for entry in entries:
            lb_id, revision = entry["id"], int(entry["revision"])
            seen[lb_id] = revision
            if self._revisions.get(lb_id) == revision:
                continue
            fields = {
                "request_id": entry.get("request_id"),
                "load_balancer_id": lb_id,
                "revision": revision,
                "seq": desired.get("seq"),
            }
            rid = f" (request {fields['request_id']})" if fields["request_id"] else ""
            if lb_id in refused:
                self._log.warning(
                    "refused load balancer %s revision %d%s: %s",
                    lb_id,
                    revision,
                    rid,
                    refused[lb_id],
                    extra=fields,
                )
                continue
            self._log.log(
                level, "applied load balancer %s revision %d%s", lb_id, revision, rid, extra=fields
            )
        self._revisions = {k: v for k, v in seen.items() if k not in refused}

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
        side = threading.Thread(target=self._side_loop, name="agent-side", daemon=True)
        side.start()
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if self.node_id is None:
                    self.register()
                desired = self.api.desired_state(
                    self.node_id or "",
                    since=self.seq,
                    wait=self._poll_wait if self.seq >= 0 else 0,
                )
                if desired.get("changed") is not False:
                    self.feed.behind()
                    with self.feed.applying():
                        self.apply(desired)
                    self.seq = int(desired["seq"])
                    self.log_applied(desired)
                    self.cache_desired(desired)
                self.feed.in_sync(self.seq)
                self.report()
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
                    self.node_id, self.seq = None, -1
                self._log.error("%s", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except ShoalError as exc:
                self.feed.behind()
                self._log.error("cannot apply seq: %s", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        side.join(2)
