"""`shoal lb`: load balancers."""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli import resources as res
from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.common import console
from shoal.cli.options import Description, Enable, Flavor, LbArg, Name

app = typer.Typer(help="Load balancers: a VIP and everything behind it.", no_args_is_help=True)


@api_command(app, "create", output="columns", waits=True)
def create_lb(
    cmd: Cmd,
    name: Name = None,
    description: Description = None,
    vip_address: Annotated[
        str | None, typer.Option(help="the VIP (default: the next free one of the VIP pool)")
    ] = None,
    vip_pool: Annotated[str | None, typer.Option(help="VIP pool to allocate from")] = None,
    flavor: Annotated[
        Flavor | None,
        typer.Option(help="l4: XDP, Maglev, direct return (TCP/UDP); l7: HAProxy (default)"),
    ] = None,
    project: Annotated[str | None, typer.Option(help="create it in this project (admins)")] = None,
) -> None:
    """Create a load balancer (a VIP is allocated unless --vip-address names one)."""
    body = res.given(
        name=name,
        description=description,
        vip_address=vip_address,
        vip_subnet_id=vip_pool,
        flavor_id=flavor.value if flavor else None,
        project_id=project,
    )
    res.create(cmd, res.LB, body)


@api_command(app, "set", output="columns", waits=True)
def set_lb(
    cmd: Cmd, lb: LbArg, name: Name = None, description: Description = None, enable: Enable = None
) -> None:
    """Rename, describe, enable or disable a load balancer."""
    changes = res.given(name=name, description=description, admin_state_up=enable)
    res.update(cmd, res.LB, res.find(cmd.api, res.LB, lb), changes)


@api_command(app, "delete", waits=True)
def delete_lb(
    cmd: Cmd,
    lb: LbArg,
    cascade: Annotated[bool, typer.Option(help="also delete its listeners and pools")] = False,
) -> None:
    """Delete a load balancer (with --cascade, everything in it)."""
    res.remove(cmd, res.LB, res.find(cmd.api, res.LB, lb), cascade=cascade or None)


@api_command(app, "failover", waits=True)
def failover(cmd: Cmd, lb: LbArg) -> None:
    """Have every node apply the load balancer's configuration again (recovers an ERROR)."""
    obj = res.find(cmd.api, res.LB, lb)
    cmd.api.put(f"{res.LB.url(obj['id'])}/failover")
    cmd.settle(obj["id"])
    console.print(f"failover of load balancer {res.describe(obj)} published", highlight=False)


# Last, so that help lists create and set first.
res.list_command(app, res.LB)
res.show_command(app, res.LB)
