"""`shoal token`: API tokens, through the API (admins). The first admin token comes from the
controller's bootstrap_token or `shoal controller token create`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.common import console, err_console
from shoal.cli.options import Role
from shoal.cli.resources import TOKEN, describe, find, list_command

app = typer.Typer(help="API tokens (admins).", no_args_is_help=True)
list_command(app, TOKEN)


@api_command(app, "create", output="columns")
def create(
    cmd: Cmd,
    name: Annotated[str, typer.Option(help="who or what uses it")],
    project: Annotated[str, typer.Option(help="the project it acts in")],
    role: Annotated[Role, typer.Option(help="what it may do")],
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=3650)] = None,
) -> None:
    """Create a token; its secret is shown this once."""
    body: dict[str, Any] = {"name": name, "project_id": project, "role": role.value}
    if expires_in_days:
        body["expires_in_days"] = expires_in_days
    token = cmd.api.post(TOKEN.path, {"token": body})["token"]
    cmd.show(token, ("id", "secret"))
    err_console.print("the secret is shown only now: keep it", style="yellow")


@api_command(app, "delete", arguments={"ref": TOKEN.argument()})
def delete(cmd: Cmd, ref: str) -> None:
    """Delete (revoke) a token."""
    token = find(cmd.api, TOKEN, ref)
    cmd.api.delete(TOKEN.url(token["id"]))
    console.print(f"deleted token {describe(token)}", highlight=False)
