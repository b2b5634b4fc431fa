"""`shoal quota`: per-project limits (-1: unlimited)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.resources import given

app = typer.Typer(help="Quotas: how many of each object a project may have.", no_args_is_help=True)

COLUMNS = ("project_id", "load_balancer", "listener", "pool", "member", "healthmonitor")
Project = Annotated[str, typer.Argument(metavar="PROJECT", help="project id")]
Limit = Annotated[int | None, typer.Option(min=-1, help="-1: unlimited", show_default=False)]


def _url(project: str) -> str:
    return f"/v2/lbaas/quotas/{project}"


@api_command(app, "show", output="columns")
def show(cmd: Cmd, project: Project) -> None:
    """A project's limits (its own, or the defaults)."""
    cmd.show(cmd.api.get(_url(project))["quota"], COLUMNS)


@api_command(app, "set", output="columns")
def set_quota(
    cmd: Cmd,
    project: Project,
    load_balancer: Limit = None,
    listener: Limit = None,
    pool: Limit = None,
    member: Limit = None,
    healthmonitor: Limit = None,
    l7policy: Limit = None,
    l7rule: Limit = None,
) -> None:
    """Set a project's limits (admins)."""
    limits: dict[str, Any] = given(
        load_balancer=load_balancer,
        listener=listener,
        pool=pool,
        member=member,
        healthmonitor=healthmonitor,
        l7policy=l7policy,
        l7rule=l7rule,
    )
    if not limits:
        raise typer.BadParameter("nothing to change: give at least one limit")
    cmd.show(cmd.api.put(_url(project), {"quota": limits})["quota"], COLUMNS)
