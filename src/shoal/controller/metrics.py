"""The controller's Prometheus metrics (`GET /metrics`): API request durations by route
template and status, writes and revisions published, long-poll waiters, and, read from the
database at scrape time, nodes by state, load balancers by status, the feed position with
each node's lag behind it, and certificate expiry.

Labels come from bounded sets only: route templates (an unknown path is "unmatched"), known
HTTP methods, status codes, and resource ids the operator or quotas bound. A client's address
or a path it made up never becomes a label value.

Who may scrape: an admin token, or the scrape token in settings (metrics_token_file), which
Prometheus sends as `Authorization: Bearer` (its `credentials_file`); see docs/metrics.md."""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoal import __version__
from shoal.controller.api.deps import AppState
from shoal.controller.auth import request_token
from shoal.controller.db.engine import Database
from shoal.controller.db.models import Certificate, LoadBalancer, Member, Node, utcnow
from shoal.controller.errors import Forbidden, Unauthorized
from shoal.controller.services import status
from shoal.controller.services.writes import current_seq
from shoal.controller.settings import ControllerSettings

__all__ = [
    "ControllerMetrics",
    "MetricsMiddleware",
    "install_metrics",
    "route_template",
    "scrape_token_matches",
]

# No `_created` series: they double every counter's series and Prometheus 2 ignores them.
disable_created_metrics()  # type: ignore[no-untyped-call]
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Long polls last up to long_poll_max (55 s): buckets reach past it.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ControllerMetrics:
    """One registry per application (tests build several apps in one process)."""

    def __init__(self, db: Database, settings: ControllerSettings) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_duration = Histogram(
            "shoal_api_request_duration_seconds",
            "API requests by method, route template and HTTP status.",
            ["method", "route", "status"],
            buckets=BUCKETS,
            registry=r,
        )
        self.writes = Counter(
            "shoal_api_writes",
            "Writes that published a revision, by action and resource type.",
            ["action", "resource"],
            registry=r,
        )
        self.revisions = Counter(
            "shoal_revisions_published", "Revisions published by this controller.", registry=r
        )
        self.waiters = Gauge(
            "shoal_feed_long_poll_waiters",
            "Agents waiting in a long poll on this controller process now.",
            registry=r,
        )
        r.register(_DatabaseCollector(db, settings))

    def observe_write(self, action: str, resource: str) -> None:
        self.writes.labels(action, resource).inc()
        self.revisions.inc()


class _DatabaseCollector(Collector):
    """What every controller sees the same way: read from the database at each scrape."""

    def __init__(self, db: Database, settings: ControllerSettings) -> None:
        self.db = db
        self.settings = settings

    def describe(self) -> Iterator[Any]:
        return iter(())  # read at scrape time only (no database query at registration)

    def collect(self) -> Iterator[Any]:
        now = utcnow()
        info = InfoMetricFamily("shoal_controller_build", "The controller's version.")
        info.add_metric([], {"version": __version__})
        yield info
        with self.db.read() as session:
            seq = current_seq(session)
            lbs = GaugeMetricFamily(
                "shoal_load_balancers",
                "Load balancers by kind and provisioning status.",
                labels=["kind", "provisioning_status"],
            )
            for kind, prov, n in session.execute(
                select(LoadBalancer.kind, LoadBalancer.provisioning_status, func.count()).group_by(
                    LoadBalancer.kind, LoadBalancer.provisioning_status
                )
            ):
                lbs.add_metric([kind, prov], n)
            yield lbs
            members = GaugeMetricFamily(
                "shoal_members",
                "Members by health as the controller decided it (UNKNOWN: not monitored).",
                labels=["health"],
            )
            for health, n in session.execute(
                select(Member.health, func.count()).group_by(Member.health)
            ):
                members.add_metric([health], n)
            yield members

            cutoff = status.liveness_cutoff(self.settings, now)
            nodes = GaugeMetricFamily(
                "shoal_nodes",
                "Registered nodes by role, admin state and liveness.",
                labels=["role", "admin_state", "operating_status"],
            )
            lag = GaugeMetricFamily(
                "shoal_node_feed_lag",
                "Changes of the feed a node has not yet reported applying.",
                labels=["node", "role"],
            )
            seen = GaugeMetricFamily(
                "shoal_node_last_seen_timestamp_seconds",
                "When a node last polled or reported.",
                labels=["node", "role"],
            )
            counts: dict[tuple[str, str, str], int] = {}
            for name, role, admin, last, applied in session.execute(
                select(Node.name, Node.role, Node.admin_state, Node.last_seen, Node.applied_seq)
            ):
                oper = "ONLINE" if last >= cutoff else "OFFLINE"
                counts[(role, admin, oper)] = counts.get((role, admin, oper), 0) + 1
                lag.add_metric([name, role], max(0, seq - applied))
                seen.add_metric([name, role], _epoch(last))
            for labels, n in sorted(counts.items()):
                nodes.add_metric(list(labels), n)
            yield nodes
            yield lag
            yield seen

            feed = GaugeMetricFamily(
                "shoal_feed_position", "The newest change in the agents' feed."
            )
            feed.add_metric([], seq)
            yield feed

            expiry = GaugeMetricFamily(
                "shoal_certificate_expiry_timestamp_seconds",
                "When each stored certificate expires (not_after).",
                labels=["certificate_id", "project_id"],
            )
            for cid, project, not_after in session.execute(
                select(Certificate.id, Certificate.project_id, Certificate.not_after)
            ):
                expiry.add_metric([cid, project], _epoch(not_after))
            yield expiry


def _epoch(when: Any) -> float:
    """The database keeps naive UTC datetimes."""
    import datetime as dt

    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return float(when.timestamp())


class MetricsMiddleware:
    """Times every HTTP request; labelled by the route template FastAPI matched."""

    def __init__(self, app: ASGIApp, metrics: ControllerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = {"status": 500}

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                code["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = route_template(scope)
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.request_duration.labels(method, template, str(code["status"])).observe(
                time.perf_counter() - started
            )


def route_template(scope: Scope) -> str:
    """The matched route's template with its router's prefix ("/v2/lbaas/loadbalancers/
    {lb_id}"): FastAPI keeps only the route's own part, so the prefix is what the request's
    path has before it. The prefix matched a router literally, so the set stays bounded."""
    route = scope.get("route")
    fmt = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not fmt:
        return "unmatched"
    path: str = scope.get("path", "")
    try:
        rendered = fmt.format(**{k: str(v) for k, v in (scope.get("path_params") or {}).items()})
    except (KeyError, IndexError, ValueError):
        return str(fmt)
    return path[: len(path) - len(rendered)] + fmt if path.endswith(rendered) else str(fmt)


def scrape_token_matches(expected: str | None, presented: str | None) -> bool:
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def install_metrics(app: FastAPI, state: AppState, metrics: ControllerMetrics) -> None:
    """GET /metrics for an admin (or global observer) token or the scrape token, and the
    request timing around every route."""
    scrape_token = None
    if state.settings.metrics_token_file is not None:
        from shoal.transport import read_secret_file

        scrape_token = read_secret_file(state.settings.metrics_token_file, "metrics token")
    metrics.waiters.set_function(lambda: state.notifier.waiters)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics(request: Request) -> Response:
        if not scrape_token_matches(scrape_token, request_token(request)):
            try:
                with state.db.read() as session:
                    principal = state.authenticator.authenticate(request, session)
            except Unauthorized as exc:
                raise Unauthorized(
                    exc.message, {"WWW-Authenticate": state.authenticator.challenge}
                ) from None
            if not principal.reads_all_projects:
                raise Forbidden("metrics need the admin role or the scrape token")
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
