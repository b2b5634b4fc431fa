"""The FastAPI application: Octavia v2 at /v2/lbaas and /v2.0/lbaas, Shoal's API at
/v2/shoal, an unauthenticated version document at / and /healthcheck."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from shoal import __version__
from shoal.controller import console
from shoal.controller.api import amphorae, lbaas, neutron
from shoal.controller.api import shoal as shoal_api
from shoal.controller.api.deps import AppState
from shoal.controller.auth import Authenticator, make_authenticator, secret_hash
from shoal.controller.bodylimit import BodyLimit
from shoal.controller.db.engine import Database
from shoal.controller.db.migrate import upgrade
from shoal.controller.db.models import Token, utcnow
from shoal.controller.errors import install_handlers
from shoal.controller.metrics import ControllerMetrics, install_metrics
from shoal.controller.plainhttp import PlainHttpGuard
from shoal.controller.requestid import RequestIdMiddleware
from shoal.controller.services import feed, placement, status, vips
from shoal.controller.services.feedwatch import FeedWatcher
from shoal.controller.services.keyring import load_keyring
from shoal.controller.services.notify import ChangeNotifier
from shoal.controller.services.pacing import FeedPacer
from shoal.controller.services.writes import Writer, current_seq
from shoal.controller.settings import ControllerSettings

__all__ = ["SERVER_HTTP", "SERVER_LOOP", "background_tick", "create_app"]

log = logging.getLogger(__name__)
# How uvicorn serves the app: uvloop's event loop and httptools' HTTP parser (C), not asyncio's
# loop and h11 (pure Python). With them the controller's CPU per member change fell 77 -> 55
# ms in `shoal bench scale` at 100 (docs/performance.md); the event loop's work (parsing,
# routing, responses) had been about half of its samples in a profile.
SERVER_LOOP: Final = "uvloop"
SERVER_HTTP: Final = "httptools"
API_VERSION = "v2.27"  # the Octavia microversion whose resources and fields Shoal serves


def bootstrap_admin(db: Database, secret: str) -> None:
    """Ensures an admin token with this secret exists (first start of a new controller)."""
    with db.write() as session:
        if session.scalar(select(Token).where(Token.secret_hash == secret_hash(secret))) is None:
            session.add(
                Token(
                    name="bootstrap-admin",
                    project_id="admin",
                    role="admin",
                    secret_hash=secret_hash(secret),
                )
            )


def background_tick(state: AppState) -> None:
    """One round of `_background`. Two transactions: the placement round holds the planner's
    lock, and a transaction that holds it must not then lock load balancer rows, which
    writers lock before they place (status.refresh_pending: the lock order)."""
    with state.db.write() as session:
        placement.reconcile(session, state.settings)
    with state.db.write() as session:
        status.refresh_pending(session, state.settings)
        alive = status.alive_nodes(session, state.settings, utcnow())
        feed.note_live_nodes(session, (n.id for n in alive))  # agents take a snapshot
        feed.compact(session, state.settings.feed_keep)


async def _background(state: AppState) -> None:
    """Once a second: re-plan L7 placements (nodes that left, drains that ended, new nodes
    to rebalance onto), settle load balancers whose nodes reported or timed out, tell the
    agents when the set of live nodes changed (health-check duties move), and trim the
    change log."""

    while True:
        await asyncio.sleep(1.0)
        try:
            await run_in_threadpool(background_tick, state)
        except Exception:  # keep serving; the next tick retries
            log.exception("background refresh failed")


def create_app(
    settings: ControllerSettings,
    *,
    migrate: bool = True,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    if settings.database_url.startswith("sqlite:///"):
        from pathlib import Path

        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    if migrate:
        upgrade(settings.database_url)
    load_keyring(settings)  # an exposed or unreadable key stops the start; the first makes one
    status.STARTED_AT = utcnow()  # nodes get node_dead_after to reach this controller
    db = Database(settings.database_url)
    if settings.bootstrap_token:
        bootstrap_admin(db, settings.bootstrap_token)
    vips.seed_once(db, settings)
    notifier = ChangeNotifier()
    metrics = ControllerMetrics(db, settings)
    feed.subscribe(db.engine, notifier.notify)  # this process's writes wake its waiters
    watcher = FeedWatcher(db, notifier.notify, settings.feed_poll_interval)
    state = AppState(
        settings,
        db,
        Writer(db, settings, notifier.notify, metrics.observe_write),
        notifier,
        authenticator or make_authenticator(settings),
        FeedPacer(settings.feed_min_interval),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with db.read() as session:
            notifier.bind(asyncio.get_running_loop(), current_seq(session))
        watcher.start()
        tasks = [asyncio.create_task(_background(state)), asyncio.create_task(watcher.poll())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            watcher.stop()
            close = getattr(state.authenticator, "close", None)  # Keystone's HTTP client
            if close is not None:
                close()
            db.dispose()

    app = FastAPI(
        title="Shoal",
        version=__version__,
        lifespan=lifespan,
        description="Load balancers as a service: the Octavia v2 API "
        "(/v2/lbaas) and Shoal's own (/v2/shoal).",
    )
    app.state.shoal = state
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        larger={"/v2/shoal/nodes/": settings.max_agent_body_bytes},
    )
    install_handlers(app)
    if not settings.insecure_http:
        app.add_middleware(PlainHttpGuard)
    install_metrics(app, state, metrics)
    app.add_middleware(RequestIdMiddleware)  # added last: outermost, so every answer has one
    # The Octavia API first: routing walks the routes in order and tenants' calls are the
    # ones whose latency people see (the agents' routes first made tenant writes +50 %).
    app.include_router(lbaas.router, prefix="/v2/lbaas")
    app.include_router(lbaas.router, prefix="/v2.0/lbaas", include_in_schema=False)
    app.include_router(shoal_api.router, prefix="/v2/shoal")
    # Neutron's paths, for clients that resolve VIP subnets through the `network` service.
    app.include_router(neutron.router, prefix="/v2.0")
    app.include_router(amphorae.router, prefix="/v2/octavia")
    console.install(app)  # the web console under /ui

    @app.get("/", tags=["versions"])
    def versions(request: Request) -> dict[str, Any]:
        base = (settings.public_url or str(request.base_url)).rstrip("/")
        return {
            "versions": [
                {
                    "id": "v2.0",
                    "status": "SUPPORTED",
                    "updated": "2016-12-11T00:00:00Z",
                    "links": [{"href": f"{base}/v2", "rel": "self"}],
                },
                {
                    "id": API_VERSION,
                    "status": "CURRENT",
                    "updated": "2023-06-01T00:00:00Z",
                    "links": [{"href": f"{base}/v2", "rel": "self"}],
                },
            ]
        }

    @app.get("/healthcheck", tags=["versions"], response_class=PlainTextResponse)
    def healthcheck() -> str:
        with db.read() as session:
            current_seq(session)
        return "OK"

    return app
