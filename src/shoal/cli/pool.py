"""`shoal pool`: groups of members that a listener sends traffic to."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shoal.cli import resources as res
from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.options import Description, Enable, LbOption, Name, PoolArg, upper

app = typer.Typer(help="Pools: the members a listener balances across.", no_args_is_help=True)

ALGORITHMS = "ROUND_ROBIN, LEAST_CONNECTIONS, SOURCE_IP or SOURCE_IP_PORT (Maglev on l4)"


def _pool_options(
    name: Name = None,
    description: Description = None,
    persistence: Annotated[
        str | None,
        typer.Option(
            callback=upper,
            help="SOURCE_IP, HTTP_COOKIE or APP_COOKIE (needs --cookie-name); NONE clears it",
            show_default=False,
        ),
    ] = None,
    cookie_name: Annotated[str | None, typer.Option(show_default=False)] = None,
) -> None:
    """The options create and set share (see api_command)."""


def _fields(fields: dict[str, Any]) -> dict[str, Any]:
    persistence, cookie = fields.pop("persistence"), fields.pop("cookie_name")
    body = res.given(**fields)
    if persistence == "NONE":
        body["session_persistence"] = None
    elif persistence:
        body["session_persistence"] = res.given(type=persistence, cookie_name=cookie)
    elif cookie:
        raise typer.BadParameter("--cookie-name goes with --persistence APP_COOKIE")
    return body


@api_command(app, "create", output="columns", waits=True, options=_pool_options)
def create_pool(
    cmd: Cmd,
    protocol: Annotated[str, typer.Option(callback=upper, help="TCP, UDP, HTTP, PROXY...")],
    algorithm: Annotated[str, typer.Option(callback=upper, help=ALGORITHMS)],
    listener: Annotated[
        str | None, typer.Option(help="listener id or name: the pool becomes its default")
    ] = None,
    lb: LbOption = None,
    **fields: Any,
) -> None:
    """Create a pool on a listener (as its default pool) or on a load balancer."""
    if (listener is None) == (lb is None):
        raise typer.BadParameter("give exactly one of --listener and --lb")
    if listener:
        where = {"listener_id": res.find(cmd.api, res.LISTENER, listener)["id"]}
    else:
        where = {"loadbalancer_id": res.find(cmd.api, res.LB, str(lb))["id"]}
    body = {**where, "protocol": protocol, "lb_algorithm": algorithm, **_fields(fields)}
    res.create(cmd, res.POOL, body)


@api_command(app, "set", output="columns", waits=True, options=_pool_options)
def set_pool(
    cmd: Cmd,
    pool: PoolArg,
    algorithm: Annotated[
        str | None, typer.Option(callback=upper, help=ALGORITHMS, show_default=False)
    ] = None,
    enable: Enable = None,
    **fields: Any,
) -> None:
    """Change a pool."""
    changes = _fields({**fields, "lb_algorithm": algorithm, "admin_state_up": enable})
    res.update(cmd, res.POOL, res.find(cmd.api, res.POOL, pool), changes)


# Last, so that help lists create and set first.
res.standard_commands(app, res.POOL, by_lb=True)
