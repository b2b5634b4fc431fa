"""What each console page handler gets: the session, an API client carrying its token, the
parsed form (CSRF checked) and the page renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from shoal.controller.api.deps import AppState, State
from shoal.controller.console.apiclient import ConsoleApi
from shoal.controller.console.session import ConsoleSession, read_session
from shoal.controller.services import flavors
from shoal.controller.services.keyring import load_keyring

__all__ = ["Console", "ConsoleDep", "install_console_handlers", "render", "security_headers"]

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.globals["kind_of"] = lambda flavor_id: flavors.BUILT_IN_KINDS.get(flavor_id, "?").upper()
# Everything the page loads comes from this controller; no inline script can run.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"  # our posts name their origin
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def render(template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(**ctx)
    response = HTMLResponse(html, status_code=status)
    return security_headers(response)  # type: ignore[return-value]


class NeedLoginError(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class CsrfRefusedError(Exception):
    pass


class Console:
    def __init__(self, request: Request, state: AppState, session: ConsoleSession) -> None:
        self.request = request
        self.state = state
        self.session = session
        self.api = ConsoleApi(request, session.token)

    async def form(self) -> dict[str, str]:
        """The posted form; refuses a post without this session's CSRF token."""
        pairs = parse_qsl((await self.request.body()).decode(), keep_blank_values=True)
        data: dict[str, str] = {}
        for key, value in pairs:
            data[key] = f"{data[key]}\n{value}" if key in data else value
        if not self.session.csrf_ok(data.pop("csrf", None)):
            raise CsrfRefusedError
        return data

    def page(self, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        return render(template, status, session=self.session, path=self.request.url.path, **ctx)


def session_max_age(state: AppState) -> float:
    return state.settings.console_session_seconds


def console(request: Request, state: State) -> Console:
    session = read_session(request, load_keyring(state.settings), session_max_age(state))
    if session is None:
        raise NeedLoginError(request.url.path if request.method == "GET" else "/ui/")
    return Console(request, state, session)


ConsoleDep = Annotated[Console, Depends(console)]


def install_console_handlers(app: FastAPI) -> None:
    async def _login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NeedLoginError)
        target = "/ui/login"
        if exc.next_path.startswith("/ui/") and exc.next_path != "/ui/login":
            target += "?next=" + quote(exc.next_path, safe="/")
        return security_headers(RedirectResponse(target, status_code=303))

    async def _csrf(request: Request, exc: Exception) -> Response:
        return render(
            "message.html",
            403,
            session=None,
            title="Form refused",
            message="This form was not sent from this console session (its CSRF token is "
            "missing or wrong): reload the page and try again.",
        )

    app.add_exception_handler(NeedLoginError, _login)
    app.add_exception_handler(CsrfRefusedError, _csrf)
