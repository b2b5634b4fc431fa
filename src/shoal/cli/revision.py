"""`shoal revision`: every change to a load balancer is a numbered revision of its whole
configuration; list them, show one, diff two, roll back to one."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.json import JSON
from rich.text import Text

from shoal.cli import shoalops
from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.common import Format, console
from shoal.cli.options import LbArg
from shoal.cli.output import print_json
from shoal.cli.resources import describe

app = typer.Typer(
    help="Revisions of a load balancer: history, diff, rollback.", no_args_is_help=True
)

COLUMNS = shoalops.REVISION_COLUMNS
Number = Annotated[int, typer.Argument(metavar="N", help="revision number")]
DIFF_STYLES = {"+": "green", "-": "red", "~": "yellow"}


@api_command(app, "list", output="columns")
def list_revisions(cmd: Cmd, lb: LbArg) -> None:
    """A load balancer's revisions, newest first."""
    cmd.show_list(shoalops.revisions(cmd.api, lb), COLUMNS, "revisions")


@api_command(app, "show", output="columns")
def show(cmd: Cmd, lb: LbArg, number: Number) -> None:
    """One revision: who made it, why, and the whole configuration (as JSON)."""
    obj, rev = shoalops.revision(cmd.api, lb, number)
    if cmd.fmt != Format.table:
        cmd.show(rev, COLUMNS)
        return
    console.print(
        f"revision {rev['number']} of load balancer {describe(obj)} (parent {rev['parent']}), "
        f"by {rev['author']} at {rev['created_at']}: {rev['message']}",
        style="bold",
        highlight=False,
    )
    console.print(JSON.from_data(rev["config"]))


@api_command(app, "diff", output="format")
def diff(
    cmd: Cmd,
    lb: LbArg,
    number: Number,
    against: Annotated[
        int | None, typer.Option(help="compare with this revision (default: its parent)")
    ] = None,
) -> None:
    """What revision N changed (+ added, - removed, ~ changed)."""
    result = shoalops.revision_diff(cmd.api, lb, number, against)
    if cmd.fmt == Format.json:
        print_json({k: result[k] for k in ("from", "to", "changes")})
        return
    for line in str(result["text"]).splitlines():
        console.print(Text(line, style=DIFF_STYLES.get(line[:1], "")))


@api_command(app, "rollback", waits=True)
def rollback(
    cmd: Cmd,
    lb: LbArg,
    number: Number,
    message: Annotated[str | None, typer.Option(help="why (kept in the revision)")] = None,
) -> None:
    """Make the configuration of revision N current again, as a new revision."""
    obj, rev = shoalops.rollback(cmd.api, lb, number, message)
    cmd.settle(obj["id"])
    console.print(
        f"load balancer {describe(obj)}: revision {rev['number']} restores revision {number}",
        highlight=False,
    )
