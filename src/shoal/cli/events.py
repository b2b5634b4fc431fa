"""`shoal event`: what happened to load balancers and nodes, newest first."""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli import shoalops
from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.options import LbOption

app = typer.Typer(help="Events: errors, deletions, node changes.", no_args_is_help=True)

COLUMNS = shoalops.EVENT_COLUMNS


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
    cmd.show_list(shoalops.events(cmd.api, lb, limit), COLUMNS, "events")
