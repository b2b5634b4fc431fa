"""What of the node's table digests and errors changed since the report the controller last
acknowledged, so that a report after one change carries that change (shoal.wire.report:
NodeReport.base). Whole reports when nothing is acknowledged: at start, after registering,
after a snapshot, and when the controller refuses a delta (409: it has another base).

Two ways to find the change: compare the whole tables with the acknowledged ones (send), or
be told which load balancers' digests were touched (touch, send_read), which costs what
changed: comparing 10,000 digests took ~5 ms a report at 10,000 load balancers."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from shoal.agents.api import ControllerRefusedError
from shoal.wire.report import REPORT_MAX

__all__ = ["ReportBody", "ReportTracker"]

Digests = dict[str, Any]
Errors = list[dict[str, Any]]
# read(None): copies of the whole tables; read(keys): the digests of those load balancers and
# of every one with an error, with all the errors.
Reader = Callable[[set[str] | None], tuple[Digests, Errors]]


@dataclass(frozen=True)
class ReportBody:
    """The tables part of one report: whole when base is None."""

    number: int
    base: int | None
    digests: Digests
    errors: Errors
    removed: list[str] = field(default_factory=list)
    # What the controller holds once it stored this report.
    all_digests: Digests = field(default_factory=dict, repr=False)
    all_errors: dict[str, Errors] = field(default_factory=dict, repr=False)
    # The touched load balancers this body took (send_read): given back when it is not stored.
    taken: set[str] = field(default_factory=set, repr=False)

    def fields(self) -> dict[str, Any]:
        body: dict[str, Any] = {"report": self.number}
        if self.base is not None:
            body["base"] = self.base
            if self.removed:
                body["removed"] = self.removed
        return body


def _by_lb(errors: Errors) -> dict[str, Errors]:
    out: dict[str, Errors] = {}
    for e in errors:
        out.setdefault(str(e.get("load_balancer_id")), []).append(e)
    return out


class ReportTracker:
    def __init__(self) -> None:
        # A random start: a controller restored from a backup cannot hold this process's
        # numbers by chance, so its base check fails and asks for a whole report.
        self._next = secrets.randbelow(REPORT_MAX // 2)
        self._acked: ReportBody | None = None
        self._touched: set[str] = set()  # since the last body send_read built
        self._touched_lock = threading.Lock()

    def touch(self, lb_ids: Iterable[str]) -> None:
        """For send_read: these load balancers' digests may have changed. Call it where they
        change, under the lock the reader takes, so that none is missed."""
        with self._touched_lock:
            self._touched.update(lb_ids)

    def reset(self) -> None:
        """The next report is whole."""
        self._acked = None

    def body(self, digests: Digests, errors: Errors) -> ReportBody:
        """digests/errors: the node's whole current tables (the caller's copies). Comparing
        entries by identity first keeps this cheap: an apply replaces only the entries of
        the load balancers it changed."""
        self._next += 1
        by_lb = _by_lb(errors)
        acked = self._acked
        if acked is None:
            return ReportBody(self._next, None, digests, errors, [], digests, by_lb)
        before_d, before_e = acked.all_digests, acked.all_errors
        changed = {k for k, v in digests.items() if (old := before_d.get(k)) is not v and old != v}
        changed.update(k for k in before_d if k not in digests)
        changed.update(k for k, v in by_lb.items() if before_e.get(k) != v)
        changed.update(k for k in before_e if k not in by_lb)
        delta_d = {k: digests[k] for k in changed if k in digests}
        delta_e = [e for k in changed for e in by_lb.get(k, [])]
        removed = sorted(k for k in changed if k not in digests and k not in by_lb)
        return ReportBody(self._next, acked.number, delta_d, delta_e, removed, digests, by_lb)

    def body_read(self, read: Reader) -> ReportBody:
        """body() from the touched load balancers, not a comparison of every digest: only
        the errors (few) are compared. Taken before reading, so a touch that races the read
        is sent (again) next time rather than lost."""
        self._next += 1
        with self._touched_lock:
            taken, self._touched = self._touched, set()
        acked = self._acked
        if acked is None:
            digests, errors = read(None)
            by_lb = _by_lb(errors)
            return ReportBody(self._next, None, digests, errors, [], {}, by_lb, taken)
        before_e = acked.all_errors
        digests, errors = read(taken | set(before_e))
        by_lb = _by_lb(errors)
        changed = set(taken)
        changed.update(k for k, v in by_lb.items() if before_e.get(k) != v)
        changed.update(k for k in before_e if k not in by_lb)
        delta_d = {k: digests[k] for k in changed if k in digests}
        delta_e = [e for k in changed for e in by_lb.get(k, [])]
        removed = sorted(k for k in changed if k not in digests and k not in by_lb)
        return ReportBody(self._next, acked.number, delta_d, delta_e, removed, {}, by_lb, taken)

    def acknowledged(self, sent: ReportBody) -> None:
        """The controller stored sent: the next delta is against it."""
        self._acked = sent

    def send(self, digests: Digests, errors: Errors, post: Callable[[ReportBody], None]) -> None:
        """post(body) sends one report; a delta the controller refuses for its base (409)
        is followed at once by a whole report. Anything else post raises (the controller
        unreachable: the answer may be lost) leaves the acknowledged base as it was."""
        self._send(lambda: self.body(digests, errors), post)

    def send_read(self, read: Reader, post: Callable[[ReportBody], None]) -> None:
        """send() of a tracker that is told what changed (touch)."""
        self._send(lambda: self.body_read(read), post)

    def _send(self, make: Callable[[], ReportBody], post: Callable[[ReportBody], None]) -> None:
        tables = make()
        try:
            try:
                post(tables)
            except ControllerRefusedError as exc:
                if exc.status != 409 or tables.base is None:
                    raise
                self.reset()
                self._give_back(tables)  # the whole report takes them again
                tables = make()
                post(tables)
        except BaseException:
            self._give_back(tables)
            raise
        self.acknowledged(tables)

    def _give_back(self, tables: ReportBody) -> None:
        if tables.taken:
            with self._touched_lock:
                self._touched |= tables.taken
