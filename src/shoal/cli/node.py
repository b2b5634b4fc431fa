"""`shoal node`: the data-plane nodes the agents registered."""

from __future__ import annotations

import typer

from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.resources import NODE, find, list_command, show_command

app = typer.Typer(help="Nodes: the machines that serve the VIPs (admins).", no_args_is_help=True)
list_command(app, NODE)
show_command(app, NODE)


def _set_admin_state(cmd: Cmd, node: str, state: str) -> None:
    obj = find(cmd.api, NODE, node)
    cmd.show(cmd.api.put(NODE.url(obj["id"]), {"admin_state": state})["node"], NODE.columns)


@api_command(app, "drain", output="columns", arguments={"node": NODE.argument()})
def drain(cmd: Cmd, node: str) -> None:
    """Take a node out of service: it withdraws its VIPs and keeps the flows it has."""
    _set_admin_state(cmd, node, "DRAINING")


@api_command(app, "undrain", output="columns", arguments={"node": NODE.argument()})
def undrain(cmd: Cmd, node: str) -> None:
    """Return a drained node to service."""
    _set_admin_state(cmd, node, "ACTIVE")
