"""`shoal listener`: the ports a load balancer listens on."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shoal.cli import resources as res
from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.options import Description, Enable, LbArg, Name, upper

app = typer.Typer(help="Listeners: a protocol and port on a load balancer.", no_args_is_help=True)

TimeoutMs = Annotated[int | None, typer.Option(min=0, help="milliseconds", show_default=False)]


def _listener_options(
    name: Name = None,
    description: Description = None,
    connection_limit: Annotated[
        int | None, typer.Option(min=-1, help="-1: unlimited", show_default=False)
    ] = None,
    default_pool_id: Annotated[
        str | None, typer.Option("--default-pool", help="pool id or name", show_default=False)
    ] = None,
    allowed_cidrs: Annotated[
        list[str] | None,
        typer.Option("--allowed-cidr", help="accept clients only from here (repeatable)"),
    ] = None,
    timeout_client_data: TimeoutMs = None,
    timeout_member_connect: TimeoutMs = None,
    timeout_member_data: TimeoutMs = None,
    timeout_tcp_inspect: TimeoutMs = None,
    default_tls_container_ref: Annotated[
        str | None,
        typer.Option("--certificate", help="TERMINATED_HTTPS: default certificate (id or name)"),
    ] = None,
    sni_container_refs: Annotated[
        list[str] | None,
        typer.Option("--sni-certificate", help="more certificates chosen by SNI (repeatable)"),
    ] = None,
) -> None:
    """The options create and set share (see api_command)."""


def _fields(cmd: Cmd, fields: dict[str, Any]) -> dict[str, Any]:
    body = res.given(**fields)
    if "default_pool_id" in body:
        body["default_pool_id"] = res.find(cmd.api, res.POOL, body["default_pool_id"])["id"]
    if "default_tls_container_ref" in body:
        ref = body["default_tls_container_ref"]
        body["default_tls_container_ref"] = res.find(cmd.api, res.CERTIFICATE, ref)["id"]
    if "sni_container_refs" in body:
        body["sni_container_refs"] = [
            res.find(cmd.api, res.CERTIFICATE, ref)["id"] for ref in body["sni_container_refs"]
        ]
    return body


@api_command(app, "create", output="columns", waits=True, options=_listener_options)
def create_listener(
    cmd: Cmd,
    lb: LbArg,
    protocol: Annotated[
        str, typer.Option(callback=upper, help="TCP or UDP (l4); HTTP, HTTPS, TCP... (l7)")
    ],
    port: Annotated[int, typer.Option(help="the port on the VIP")],
    **fields: Any,
) -> None:
    """Create a listener on a load balancer."""
    lb_id = res.find(cmd.api, res.LB, lb)["id"]
    body = {"loadbalancer_id": lb_id, "protocol": protocol, "protocol_port": port}
    res.create(cmd, res.LISTENER, {**body, **_fields(cmd, fields)}, lb_id)


@api_command(app, "set", output="columns", waits=True, options=_listener_options)
def set_listener(
    cmd: Cmd,
    listener: Annotated[str, typer.Argument(metavar="LISTENER", help="listener id or name")],
    enable: Enable = None,
    **fields: Any,
) -> None:
    """Change a listener."""
    changes = _fields(cmd, {**fields, "admin_state_up": enable})
    res.update(cmd, res.LISTENER, res.find(cmd.api, res.LISTENER, listener), changes)


# Last, so that help lists create and set first.
res.standard_commands(app, res.LISTENER, by_lb=True)
