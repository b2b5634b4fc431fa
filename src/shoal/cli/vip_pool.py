"""`shoal vip-pool`: the ranges VIP addresses come from, and who may use them (admins
create and change them; tenants list the pools they may use)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.common import console
from shoal.cli.resources import Kind, given, list_command

app = typer.Typer(help="VIP pools: where VIP addresses come from.", no_args_is_help=True)
VIP_POOL = Kind(
    "vip_pool",
    "/v2/shoal/vip-pools",
    ("id", "name", "cidr", "shared", "project_ids", "network_id"),
    "VIP pool",
    name_filter=False,
    metavar="POOL",
)
list_command(app, VIP_POOL)
Ref = VIP_POOL.argument()
Projects = Annotated[
    list[str] | None,
    typer.Option("--project", help="a project that may use it (repeat it)", show_default=False),
]


@api_command(app, "show", output="columns", arguments={"ref": Ref})
def show(cmd: Cmd, ref: str) -> None:
    """One pool."""
    cmd.show(cmd.api.get(VIP_POOL.url(ref))[VIP_POOL.key], VIP_POOL.columns)


@api_command(app, "create", output="columns")
def create(
    cmd: Cmd,
    name: Annotated[str, typer.Argument(metavar="NAME", help="the pool's name")],
    cidr: Annotated[str, typer.Option(help="the prefix VIPs come from, e.g. 203.0.113.0/24")],
    project: Projects = None,
    shared: Annotated[bool, typer.Option(help="every project may use it")] = False,
    network_id: Annotated[str | None, typer.Option(help="group pools as one network")] = None,
    description: Annotated[str, typer.Option()] = "",
) -> None:
    """Create a pool (admins). Special ranges (loopback, multicast, link-local, ...) and
    prefixes overlapping another pool are refused."""
    body: dict[str, Any] = {
        "name": name,
        "cidr": cidr,
        "shared": shared,
        "project_ids": project or [],
    }
    body |= given(network_id=network_id, description=description or None)
    cmd.show(cmd.api.post(VIP_POOL.path, {"vip_pool": body})[VIP_POOL.key], VIP_POOL.columns)


@api_command(app, "set", output="columns", arguments={"ref": Ref})
def set_pool(
    cmd: Cmd,
    ref: str,
    name: Annotated[str | None, typer.Option(show_default=False)] = None,
    project: Projects = None,
    shared: Annotated[bool | None, typer.Option(show_default=False)] = None,
    description: Annotated[str | None, typer.Option(show_default=False)] = None,
) -> None:
    """Change a pool's name or who may take new VIPs from it (--project replaces the list);
    load balancers keep the VIPs they hold."""
    body = given(name=name, project_ids=project, shared=shared, description=description)
    if not body:
        raise typer.BadParameter("nothing to change")
    cmd.show(cmd.api.put(VIP_POOL.url(ref), {"vip_pool": body})[VIP_POOL.key], VIP_POOL.columns)


@api_command(app, "delete", arguments={"ref": Ref})
def delete(cmd: Cmd, ref: str) -> None:
    """Delete a pool that no load balancer uses any more."""
    cmd.api.delete(VIP_POOL.url(ref))
    console.print(f"deleted VIP pool {ref}", highlight=False)
