"""Dependencies shared by the endpoints, as typed Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from shoal.controller.auth import Authenticator, Principal
from shoal.controller.db.engine import Database
from shoal.controller.errors import BadRequest, Unauthorized
from shoal.controller.services.notify import ChangeNotifier
from shoal.controller.services.pacing import FeedPacer
from shoal.controller.services.writes import Writer
from shoal.controller.settings import ControllerSettings

__all__ = ["AppState", "CurrentPrincipal", "IfMatch", "State"]


@dataclass
class AppState:
    settings: ControllerSettings
    db: Database
    writer: Writer
    notifier: ChangeNotifier
    authenticator: Authenticator
    pacer: FeedPacer


async def app_state(request: Request) -> AppState:
    """Async: a plain attribute read needs no worker thread (a sync one costs a hop each)."""
    state: AppState = request.app.state.shoal
    return state


State = Annotated[AppState, Depends(app_state)]


def current_principal(request: Request, state: State) -> Principal:
    try:
        with state.db.read() as session:
            return state.authenticator.authenticate(request, session)
    except Unauthorized as exc:
        # Every 401 names how to authenticate (Keystone's uri, for OpenStack clients).
        raise Unauthorized(
            exc.message, {"WWW-Authenticate": state.authenticator.challenge}
        ) from None


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def if_match(if_match: Annotated[str | None, Header()] = None) -> int | None:
    """If-Match: "<revision>" (the ETag of a GET): the write applies only to that revision."""
    if if_match is None or if_match.strip() == "*":
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise BadRequest(
            f"If-Match must be a revision number in quotes (an ETag), not {if_match!r}"
        )
    return int(value)


IfMatch = Annotated[int | None, Depends(if_match)]
