"""The `shoal` command. Command groups are imported only when used: the data plane and the
controller pull in heavy modules, and `shoal lb list` should start in a blink."""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from shoal import __version__

# name -> "module:attribute": a Typer app (a group, or one command) or a command function
LAZY = {
    "lb": "shoal.cli.lb:app",
    "listener": "shoal.cli.listener:app",
    "pool": "shoal.cli.pool:app",
    "member": "shoal.cli.member:app",
    "healthmonitor": "shoal.cli.healthmonitor:app",
    "certificate": "shoal.cli.certificates:app",
    "status": "shoal.cli.status:app",
    "revision": "shoal.cli.revision:app",
    "node": "shoal.cli.node:app",
    "event": "shoal.cli.events:app",
    "quota": "shoal.cli.quotas:app",
    "vip-pool": "shoal.cli.vip_pool:app",
    "token": "shoal.cli.tokens:app",
    "controller": "shoal.cli.controller:app",
    "dataplane": "shoal.cli.dataplane:app",
    "bench": "shoal.cli.bench:app",
    "demo": "shoal.cli.demo:demo",
    "agent": "shoal.cli.agent:app",
    "lab": "shoal.cli.lab:app",
}


def load(name: str) -> Any:
    module, _, attr = LAZY[name].partition(":")
    target = getattr(importlib.import_module(module), attr)
    if not isinstance(target, typer.Typer):
        target = typer.Typer()
        target.command(name)(getattr(importlib.import_module(module), attr))
    command = typer.main.get_command(target)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    # Any: Typer's Click (vendored or not, by version) types these.
    def list_commands(self, ctx: Any) -> list[str]:
        return [*LAZY, *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return load(cmd_name) if cmd_name in LAZY else super().get_command(ctx, cmd_name)


app = typer.Typer(
    name="shoal",
    cls=LazyGroup,
    help="Shoal: load-balancer-as-a-service for private clouds.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """Shoal: load-balancer-as-a-service for private clouds."""


@app.command()
def version() -> None:
    """Print Shoal's version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app(prog_name="shoal")
