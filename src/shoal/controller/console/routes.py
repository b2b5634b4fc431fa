"""The console's router: login, logout, its static files, and every page module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from shoal.controller.api.deps import State
from shoal.controller.console import pages_admin, pages_certs, pages_lb, pages_revisions, wizard
from shoal.controller.console.context import (
    ConsoleDep,
    install_console_handlers,
    render,
    security_headers,
)
from shoal.controller.console.login import LoginError, is_safe_next, keystone_token, principal_for
from shoal.controller.console.session import clear_cookie, new_session, set_cookie
from shoal.controller.services.keyring import load_keyring

__all__ = ["install", "router"]

router = APIRouter(prefix="/ui", include_in_schema=False)
STATIC = Path(__file__).parent / "static"
# Served by name from this fixed table: no path from the URL reaches the file system.
STATIC_FILES = {"console.css": "text/css", "console.js": "text/javascript"}


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC_FILES:
        return Response(status_code=404)
    response = Response((STATIC / name).read_bytes(), media_type=STATIC_FILES[name])
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("/")
def index() -> Response:
    return security_headers(RedirectResponse("/ui/loadbalancers", status_code=303))


def _login_page(state: State, status: int = 200, error: str = "", next_path: str = "") -> Response:
    return render(
        "login.html",
        status,
        session=None,
        error=error,
        next_path=next_path,
        keystone=state.settings.auth == "keystone",
    )


def same_origin(request: Request) -> bool:
    """A browser names the posting page's origin (our pages' Referrer-Policy keeps it named;
    a page that hides it sends "null", refused); none at all is not a browser (curl)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


@router.get("/login")
def login_form(state: State, next: Annotated[str, Query()] = "") -> Response:
    return _login_page(state, next_path=next if is_safe_next(next) else "")


@router.post("/login")
async def login(request: Request, state: State) -> Response:
    if not same_origin(request):
        # Login CSRF: another site must not log the browser in as someone else.
        return _login_page(state, 403, "this login form was sent from another site")
    form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    next_path = form.get("next", "")
    token = form.get("token", "").strip()
    try:
        if not token and form.get("username"):
            if state.settings.keystone is None:
                raise LoginError("this controller has no Keystone: log in with a Shoal token")
            token = await run_in_threadpool(
                keystone_token,
                state.settings.keystone,
                form.get("username", ""),
                form.get("password", ""),
                form.get("project", ""),
                form.get("domain", "") or "Default",
            )
        if not token:
            raise LoginError("give an API token, or a Keystone user, password and project")
        principal = await run_in_threadpool(principal_for, state, token)
        if principal.node is not None:
            raise LoginError("a node's credential cannot log in to the console")
    except LoginError as exc:
        return _login_page(state, 401, str(exc), next_path if is_safe_next(next_path) else "")
    session = new_session(token, principal.name, principal.project_id, principal.role)
    target = next_path if is_safe_next(next_path) else "/ui/loadbalancers"
    response = RedirectResponse(target, status_code=303)
    keyring = load_keyring(state.settings)
    set_cookie(response, keyring, session, state.settings.console_session_seconds)
    return security_headers(response)


@router.post("/logout")
async def logout(c: ConsoleDep) -> Response:
    await c.form()
    response = RedirectResponse("/ui/login", status_code=303)
    clear_cookie(response)
    return security_headers(response)


for module in (pages_lb, wizard, pages_revisions, pages_certs, pages_admin):
    router.include_router(module.router)


def install(app: FastAPI) -> None:
    install_console_handlers(app)
    app.include_router(router)
