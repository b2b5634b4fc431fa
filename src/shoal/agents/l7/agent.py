"""The L7 agent: registers its node (cluster, capacity, data address), long-polls the
controller for the load balancers placed on it, and drives one HAProxy in master-worker mode.

- Member additions, removals, weight and admin-state changes go through the runtime API (no
  reload) and are written to the configuration file too, so a later reload keeps them. Added
  servers become ordinary ones at a hitless reload once members are quiet (consolidate).
- Anything else is a checked configuration and a hitless reload. A load balancer HAProxy
  refuses is left out and reported; the others go ahead; the running configuration stays if
  nothing can be made to pass.
- Reports the applied position, per-load-balancer errors, per-listener and per-member stats;
  posts member health as HAProxy's checks decide it.

HAProxy outlives the agent: a restarted agent adopts the running master, so traffic does not
notice agent upgrades."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal import __version__
from shoal.agents.api import AgentApi, NodeInfo
from shoal.agents.files import private_dir
from shoal.agents.l7.haproxy import (
    ConfigRejectedError,
    HAProxy,
    RuntimeCommandError,
    check_account,
)
from shoal.agents.l7.model import BuildCache, RuntimePlan, build, runtime_plan
from shoal.agents.l7.render import Rendered, fitting_maxconn, render, tls_files
from shoal.agents.l7.stats import Ownership, counters_from, health_from
from shoal.agents.l7.vips import VipAddresses
from shoal.agents.loop import AgentLoop
from shoal.agents.report_delta import ReportBody
from shoal.errors import ShoalError
from shoal.wire.feed import DesiredState, LbState

__all__ = ["L7Agent", "L7AgentConfig"]

log = logging.getLogger("shoal.agent.l7")


@dataclass
class L7AgentConfig:
    controller: str
    token: str
    name: str
    data_address: str  # the L4 tier encapsulates VIP traffic to it; the monitor binds here
    cluster: str = "default"
    capacity: int = 100
    address: str | None = None
    run_dir: Path = Path("/run/shoal/l7")
    state_dir: Path = Path("/var/lib/shoal/agent")
    haproxy_binary: str = "haproxy"
    # HAProxy's workers drop root for this user and group (Debian's haproxy package creates
    # both); "" keeps them root, which only suits a development machine.
    haproxy_user: str = "haproxy"
    haproxy_group: str = "haproxy"
    monitor_port: int = 8404
    vip_device: str = "lo"
    poll_wait: float = 25.0
    maxconn: int = 100000
    hard_stop_after: str = "60s"
    consolidate_after: float = 5.0  # quiet seconds before servers added at runtime go static
    reload_batch: float = 0.5  # at most one reload per this many seconds; 0: each at once


@dataclass
class Applied:
    rendered: Rendered
    tls_dir: Path
    lbs: list[dict[str, Any]]  # the configs in it


class L7Agent(AgentLoop):
    role = "l7"

    def __init__(self, config: L7AgentConfig, api: AgentApi) -> None:
        super().__init__(
            api, config.state_dir / f"{config.name}.desired.json", config.poll_wait, log
        )
        self.cfg = config
        self.home = config.run_dir / config.name
        self.proxy = HAProxy(self.home, config.haproxy_binary)
        self.vips = VipAddresses(config.state_dir / f"{config.name}.vips.json", config.vip_device)
        self.applied: Applied | None = None
        self.errors: list[dict[str, Any]] = []
        self.pending_deletions: set[str] = set()
        self.reloads = 0
        self.runtime_changes = 0
        self._reported_health: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._proxy_lock = threading.RLock()  # one change to HAProxy at a time
        self.consolidate_at: float | None = None
        self._batched: tuple[Applied, Any] | None = None  # a reload waiting for its window
        self._last_reload = float("-inf")
        self._live_seq: Any = -1  # the position HAProxy runs
        self._timer: threading.Timer | None = None
        # Per-load-balancer parts of the last builds (model.build): an unchanged one costs a
        # JSON dump, not a rebuild.
        self._probe_cache: BuildCache = {}
        self._build_cache: BuildCache = {}
        self._dumped: dict[str, tuple[LbState, dict[str, Any]]] = {}

    # ---- rendering ---------------------------------------------------------------------------

    def _render(self, lbs: list[dict[str, Any]], certificates: dict[str, str]) -> Applied:
        """Renders into a TLS directory named by its content: the same input gives the same
        configuration text, and files a running configuration uses are never rewritten."""
        # The files' names and contents without their directory (which the digest names):
        # the model alone, not a second rendering of the whole configuration.
        probe = tls_files(build(lbs, "@", self._probe_cache).crt_lists, certificates, "@")
        digest = hashlib.sha256(
            "".join(f"{k}\0{v}\0" for k, v in sorted(probe.items())).encode()
        ).hexdigest()[:16]
        tls_dir = self.home / "tls" / digest
        rendered = render(
            self.cfg.name,
            lbs,
            certificates,
            run_dir=str(self.home),
            crt_dir=str(tls_dir),
            cache=self._build_cache,  # its keys name crt_dir: another directory misses
            **self._opts(lbs),
        )
        if rendered.files and not tls_dir.exists():
            private_dir(tls_dir.parent)
            tmp = tls_dir.with_name(tls_dir.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True, mode=0o700)
            for name, content in rendered.files.items():
                fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(content)
            os.replace(tmp, tls_dir)
        return Applied(rendered, tls_dir, lbs)

    def _opts(self, lbs: list[dict[str, Any]]) -> dict[str, Any]:
        listeners = sum(len(lb.get("listeners", [])) for lb in lbs)
        servers = sum(len(p.get("members", [])) for lb in lbs for p in lb.get("pools", []))
        return {
            "monitor_address": self.cfg.data_address,
            "monitor_port": self.cfg.monitor_port,
            "maxconn": fitting_maxconn(self.cfg.maxconn, listeners, servers),
            "hard_stop_after": self.cfg.hard_stop_after,
            "user": self.cfg.haproxy_user or None,
            "group": self.cfg.haproxy_group or None,
        }

    def _checked(
        self, lbs: list[dict[str, Any]], certificates: dict[str, str], candidate: Applied
    ) -> tuple[Applied, dict[str, str]]:
        """A configuration HAProxy accepts, leaving out the load balancers it refuses (each
        tried alone to find them), with their reasons. candidate: all of them, rendered."""
        try:
            self.proxy.check(candidate.rendered.config)
            return candidate, {}
        except ConfigRejectedError as exc:
            log.warning("HAProxy refused the configuration (%s); isolating", exc)
        refused: dict[str, str] = {}
        for lb in lbs:
            try:
                self.proxy.check(self._render([lb], certificates).rendered.config)
            except ConfigRejectedError as exc:
                refused[lb["id"]] = f"HAProxy refused its configuration: {exc}"
        rest = [lb for lb in lbs if lb["id"] not in refused]
        candidate = self._render(rest, certificates)
        self.proxy.check(candidate.rendered.config)  # still refused: keep the running one
        return candidate, refused

    # ---- applying ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Starts HAProxy on an empty configuration, or adopts the one already running."""
        check_account(self.cfg.haproxy_user, self.cfg.haproxy_group)
        if self.proxy.running:
            log.info("adopting the running HAProxy (pid %s)", self.proxy.master_pid())
            return
        empty = self._render([], {})
        self.proxy.install(empty.rendered.config)
        self.proxy.start()
        self.applied = empty

    def apply(self, desired: DesiredState | dict[str, Any]) -> None:
        with self._proxy_lock:
            self._apply(DesiredState.of(desired))

    def _configs(self, desired: DesiredState) -> list[dict[str, Any]]:
        """The configurations as the renderer reads them (plain dicts), each converted once
        while its LbState object stays the same."""
        out, cache = [], {}
        for lb in desired.lbs.values():
            hit = self._dumped.get(lb.id)
            doc = hit[1] if hit is not None and hit[0] is lb else lb.config.model_dump()
            cache[lb.id] = (lb, doc)
            out.append(doc)
        self._dumped = cache
        return out

    def _runtime_plan(self, new: Applied) -> RuntimePlan | None:
        """The runtime commands from what HAProxy runs (or will run after a batched reload)
        to new; None when new needs a reload."""
        if self._batched is not None:
            return None  # a reload is due anyway: the change rides along
        if self.applied is None or self.applied.tls_dir != new.tls_dir:
            return None
        return runtime_plan(self.applied.rendered.model, new.rendered.model)

    def _apply_runtime(self, new: Applied, plan: RuntimePlan, seq: Any) -> bool:
        """Applies plan; False (nothing recorded) when HAProxy refused a command, and the
        caller reloads, which also undoes the commands that went through."""
        if plan.commands and not self._runtime(plan.commands):
            return False
        # Only member lines differ from the running configuration, and HAProxy took each of
        # them: the file follows without a `haproxy -c`, so the next reload keeps them.
        self.proxy.write_unchecked(new.rendered.config)
        if plan.commands:
            self.pending_deletions |= set(plan.deletions)
            self.runtime_changes += 1
            if any(cmd.startswith("add server") for cmd in plan.commands):
                self.consolidate_at = time.monotonic() + self.cfg.consolidate_after
            log.info("seq %s applied at runtime (%d commands)", seq, len(plan.commands))
        return True

    def _apply(self, desired: DesiredState) -> None:
        lbs = self._configs(desired)
        revisions = {lb.id: lb.revision for lb in desired.lbs.values()}
        certificates = desired.certificates
        candidate = self._render(lbs, certificates)
        # Member changes first: no `haproxy -c` of the whole configuration for them.
        plan = self._runtime_plan(candidate)
        if plan is not None and self._apply_runtime(candidate, plan, desired.seq):
            self.applied = candidate
            self._live_seq = desired.seq
            with self._lock:
                self.errors = []  # the same load balancers as the running set: none refused
            return
        try:
            new, refused = self._checked(lbs, certificates, candidate)
        except ConfigRejectedError as exc:
            reason = f"HAProxy refused the node's configuration: {exc}"
            with self._lock:
                self.errors = [
                    {"load_balancer_id": k, "revision": v, "reason": reason}
                    for k, v in revisions.items()
                ]
            if self._batched is None:
                self._live_seq = desired.seq  # reported with every one refused
            return
        plan = None if new is candidate else self._runtime_plan(new)  # some were left out
        if plan is None or not self._apply_runtime(new, plan, desired.seq):
            self._reload_soon(new, desired.seq)
        else:
            self._live_seq = desired.seq
        self.applied = new
        for stale in (self.home / "tls").glob("*"):
            if stale != new.tls_dir:  # older generations and refused candidates
                shutil.rmtree(stale, ignore_errors=True)
        with self._lock:
            self.errors = [
                {"load_balancer_id": k, "revision": revisions[k], "reason": v}
                for k, v in refused.items()
            ]

    def _runtime(self, commands: list[str]) -> bool:
        # The CLI runs each line, and each ';'-separated part of one: a value that smuggles
        # either would run a command nobody planned. The controller validates addresses;
        # this holds whatever arrives, and the checked path (`haproxy -c`) judges it.
        if any(c in cmd for cmd in commands for c in ";\n\r"):
            log.warning("a runtime command holds ';' or a line break; reloading instead")
            return False
        for cmd in commands:
            try:
                self.proxy.command(cmd)
            except RuntimeCommandError as exc:
                log.warning("runtime change failed (%s); reloading instead", exc)
                return False
        return True

    def _reload_soon(self, new: Applied, seq: Any) -> None:
        """Reloads now, unless the last reload is less than reload_batch seconds old: then
        once that much time has passed, with whatever the state is by then (a burst of
        changes costs one reload per window, not one each; old workers linger up to
        hard_stop_after). The node reports the position HAProxy runs, not the one it has."""
        wait = self._last_reload + self.cfg.reload_batch - time.monotonic()
        if wait <= 0:
            self._reload(new)
            self._live_seq = seq
            return
        if self._batched is None:
            self._timer = threading.Timer(wait, self.flush, kwargs={"report": True})
            self._timer.daemon = True
            self._timer.start()
        self._batched = (new, seq)

    def flush(self, report: bool = False) -> bool:
        """Does the batched reload now, if one is due; True when it reloaded. report: tell
        the controller the position it reached (the loop may be waiting on a long poll)."""
        with self._proxy_lock:
            if self._batched is None:
                return False
            new, seq = self._batched
            self._reload(new)
            self._batched = None
            self._live_seq = seq
        if report and self.node_id is not None:
            try:
                self.report()
            except ShoalError as exc:
                log.warning("report after a batched reload: %s", exc)
        return True

    def _reload(self, new: Applied) -> None:
        wanted = {lb["vip_address"] for lb in new.lbs}
        self.vips.ensure(wanted)  # before HAProxy binds them
        self.proxy.install(new.rendered.config)
        self.proxy.reload()
        self.pending_deletions.clear()  # the new process has none of the removed servers
        self.consolidate_at = None  # and its servers are all static
        self.reloads += 1
        self._last_reload = time.monotonic()
        self.vips.prune(wanted)
        log.info("reloaded HAProxy (%d load balancers)", len(new.lbs))

    def consolidate(self, now: float | None = None) -> bool:
        """HAProxy 2.6 keeps no idle connections to servers added at runtime: every request
        to one opens a new connection (2.5 times the CPU per request in the lab). Once the
        members have been quiet for consolidate_after seconds, a hitless reload makes them
        ordinary servers. True when it reloaded."""
        due = self.consolidate_at
        if due is None or (now if now is not None else time.monotonic()) < due:
            return False
        with self._proxy_lock:
            if self.applied is None or self.consolidate_at is None or self._batched:
                return False  # a batched reload consolidates too
            self._reload(self.applied)
        log.info("servers added at runtime are now static (connection reuse)")
        return True

    def delete_drained_servers(self) -> None:
        """Removed members left in maintenance until their last connection ends."""
        for target in sorted(self.pending_deletions):
            try:
                self.proxy.command(f"del server {target}")
                self.pending_deletions.discard(target)
            except RuntimeCommandError as exc:
                if "No such" in str(exc) or "Unknown" in str(exc):
                    self.pending_deletions.discard(target)

    # ---- reporting ---------------------------------------------------------------------------

    def ownership(self) -> Ownership:
        return Ownership.of(self.applied.lbs if self.applied else [])

    def report(self) -> None:
        """Errors as deltas against the report the controller acknowledged (a whole one when
        it has another base: 409); HAProxy's per-LB counters at most every traffic_every
        seconds (the controller keeps the last), so a report after one change costs that."""
        assert self.node_id is not None
        counters = (
            counters_from(self.proxy.stats(), self.ownership()) if self._traffic_due() else {}
        )
        counters["haproxy"] = {
            "reloads": self.reloads,
            "runtime_changes": self.runtime_changes,
            "pending_deletions": len(self.pending_deletions),
        }
        with self._lock:
            errors = list(self.errors)
        # The position HAProxy runs (set by each apply), behind the feed's while a batched
        # reload waits.
        with self._proxy_lock:
            seq = int(self._live_seq)

        def post(tables: ReportBody) -> None:
            assert self.node_id is not None
            self.api.report(
                self.node_id,
                seq,
                tables.errors,
                {},
                counters,
                version=__version__,
                numbering=tables.fields(),
            )

        self.reports.send({}, errors, post)

    def side_tick(self) -> None:
        assert self.node_id is not None
        if self.pending_deletions:
            with self._proxy_lock:
                self.delete_drained_servers()
        self.consolidate()
        health = health_from(self.proxy.stats())
        changed = {m: ok for m, ok in health.items() if self._reported_health.get(m) != ok}
        if changed:
            self.api.health(
                self.node_id,
                [{"member_id": m, "ok": ok, "decided": True} for m, ok in changed.items()],
            )
            self._reported_health.update(changed)

    def register(self) -> None:
        info = NodeInfo(
            name=self.cfg.name,
            role="l7",
            cluster=self.cfg.cluster,
            address=self.cfg.address or self.cfg.data_address,
            data_address=self.cfg.data_address,
            capacity=self.cfg.capacity,
            version=__version__,
        )
        self.node_id = self.api.register(info)
        self.reports.reset()  # the controller may hold another base (or none)
        self._reported_health.clear()
        log.info("registered as L7 node %s (%s)", self.cfg.name, self.node_id)

    def stop(self) -> None:
        self._stop.set()

    def close(self, stop_proxy: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if stop_proxy:
            self.proxy.stop()
            self.vips.prune(set())
        self.api.close()
