"""`shoal healthmonitor`: how a pool's members are checked."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shoal.cli import resources as res
from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.options import Enable, Name, PoolArg, upper

app = typer.Typer(help="Health monitors: one per pool.", no_args_is_help=True)

Seconds = Annotated[int, typer.Option(help="seconds")]
Retries = Annotated[int, typer.Option(help="successes that make a member up (1-10)")]
MaybeSeconds = Annotated[int | None, typer.Option(help="seconds", show_default=False)]
MaybeRetries = Annotated[int | None, typer.Option(help="successes that make a member up")]


def _monitor_options(
    name: Name = None,
    max_retries_down: Annotated[
        int | None, typer.Option(help="failures that make a member down", show_default=False)
    ] = None,
    url_path: Annotated[str | None, typer.Option(help="HTTP(S): path to request")] = None,
    expected_codes: Annotated[
        str | None, typer.Option(help="HTTP(S): e.g. 200, 200-204 or 200,301")
    ] = None,
    http_method: Annotated[str | None, typer.Option(callback=upper, help="HTTP(S)")] = None,
) -> None:
    """The options create and set share (see api_command)."""


@api_command(app, "create", output="columns", waits=True, options=_monitor_options)
def create_monitor(
    cmd: Cmd,
    pool: PoolArg,
    type_: Annotated[
        str, typer.Option("--type", callback=upper, help="TCP, HTTP, HTTPS, PING, UDP-CONNECT...")
    ],
    delay: Seconds,
    timeout: Seconds,
    max_retries: Retries,
    **fields: Any,
) -> None:
    """Check a pool's members every --delay seconds."""
    pool_id = res.find(cmd.api, res.POOL, pool)["id"]
    body = {"pool_id": pool_id, "type": type_, "delay": delay, "timeout": timeout}
    res.create(cmd, res.HEALTHMONITOR, {**body, "max_retries": max_retries, **res.given(**fields)})


@api_command(app, "set", output="columns", waits=True, options=_monitor_options)
def set_monitor(
    cmd: Cmd,
    monitor: Annotated[
        str, typer.Argument(metavar="HEALTH_MONITOR", help="health monitor id or name")
    ],
    delay: MaybeSeconds = None,
    timeout: MaybeSeconds = None,
    max_retries: MaybeRetries = None,
    enable: Enable = None,
    **fields: Any,
) -> None:
    """Change a health monitor."""
    changes = res.given(
        delay=delay, timeout=timeout, max_retries=max_retries, admin_state_up=enable, **fields
    )
    res.update(cmd, res.HEALTHMONITOR, res.find(cmd.api, res.HEALTHMONITOR, monitor), changes)


# Last, so that help lists create and set first.
res.standard_commands(app, res.HEALTHMONITOR)
