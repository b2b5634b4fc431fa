"""`shoal event`: what happened to load balancers and nodes, newest first."""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.options import LbOption
from shoal.cli.resources import LB, find

app = typer.Typer(help="Events: errors, deletions, node changes.", no_args_is_help=True)

COLUMNS = ("id", "at", "severity", "kind", "message")


@app.callback()
def events() -> None:
    """Events: errors, deletions, node changes."""  # a group, though it has one command


@api_command(app, "list", output="columns")
def list_events(
    cmd: Cmd,
    lb: LbOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many")] = 50,
) -> None:
    """Recent events, newest first."""
    lb_id = find(cmd.api, LB, lb)["id"] if lb else None
    events = cmd.api.get("/v2/shoal/events", load_balancer_id=lb_id, limit=limit)["events"]
    cmd.show_list(events, COLUMNS, "events")
