"""`shoal member`: the backends of a pool."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.cli import resources as res
from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.client import ApiClient
from shoal.cli.files import read_yaml
from shoal.cli.options import Enable, Name, PoolArg
from shoal.errors import ConfigError

app = typer.Typer(help="Members: the backends of a pool.", no_args_is_help=True)

MemberArg = Annotated[
    str, typer.Argument(metavar="MEMBER", help="member id, name, or ADDRESS:PORT")
]
Weight = Annotated[
    int | None, typer.Option(help="share of new flows, 0-256 (0: drain)", show_default=False)
]


def _address_port(ref: str) -> tuple[str, int] | None:
    """10.0.0.1:80 or [fd00::1]:80 as (address, port); None if ref is not one."""
    host, sep, port = ref.rpartition(":")
    if not sep or not port.isdigit():
        return None
    try:
        return str(ipaddress.ip_address(host.strip("[]"))), int(port)
    except ValueError:
        return None


def _pool_member(api: ApiClient, pool: str, member: str) -> tuple[res.Kind, dict[str, Any], str]:
    """(the pool's member kind, the member, the load balancer id)."""
    pool_obj = res.find(api, res.POOL, pool)
    kind = res.members_of(pool_obj["id"])
    target = _address_port(member)
    if target is None:
        obj = res.find(api, kind, member)
    else:
        rows = api.get(kind.path, address=target[0], protocol_port=target[1])[kind.collection]
        obj = res.unique(kind, member, rows)
    return kind, obj, res.lb_id_of(api, pool_obj)


@api_command(app, "add", output="columns", waits=True)
def add(
    cmd: Cmd,
    pool: PoolArg,
    address: Annotated[str, typer.Option(help="the backend's IP address")],
    port: Annotated[int, typer.Option(help="the backend's port")],
    weight: Weight = None,
    backup: Annotated[bool, typer.Option(help="only used when no other member is up")] = False,
    name: Name = None,
) -> None:
    """Add a member to a pool."""
    pool_obj = res.find(cmd.api, res.POOL, pool)
    body = res.given(address=address, protocol_port=port, weight=weight, name=name)
    body["backup"] = backup
    res.create(cmd, res.members_of(pool_obj["id"]), body, res.lb_id_of(cmd.api, pool_obj))


@api_command(app, "list", output="columns")
def list_members(cmd: Cmd, pool: PoolArg) -> None:
    """List a pool's members."""
    kind = res.members_of(res.find(cmd.api, res.POOL, pool)["id"])
    cmd.show_list(res.listing(cmd.api, kind), kind.columns, "members")


@api_command(app, "show", output="columns")
def show(cmd: Cmd, pool: PoolArg, member: MemberArg) -> None:
    """Show a member."""
    kind, obj, _ = _pool_member(cmd.api, pool, member)
    cmd.show(obj, kind.columns)


@api_command(app, "set", output="columns", waits=True)
def set_member(
    cmd: Cmd,
    pool: PoolArg,
    member: MemberArg,
    weight: Weight = None,
    backup: Annotated[bool | None, typer.Option("--backup/--no-backup", show_default=False)] = None,
    name: Name = None,
    enable: Enable = None,
) -> None:
    """Change a member's weight, backup role, name or admin state."""
    kind, obj, lb_id = _pool_member(cmd.api, pool, member)
    changes = res.given(weight=weight, backup=backup, name=name, admin_state_up=enable)
    res.update(cmd, kind, obj, changes, lb_id)


@api_command(app, "drain", output="columns", waits=True)
def drain(cmd: Cmd, pool: PoolArg, member: MemberArg) -> None:
    """Send a member no new flows (weight 0); the flows it has stay until they end."""
    kind, obj, lb_id = _pool_member(cmd.api, pool, member)
    res.update(cmd, kind, obj, {"weight": 0}, lb_id)


@api_command(app, "remove", waits=True)
def remove_member(cmd: Cmd, pool: PoolArg, member: MemberArg) -> None:
    """Remove a member from its pool."""
    kind, obj, lb_id = _pool_member(cmd.api, pool, member)
    res.remove(cmd, kind, obj, lb_id)


def _read_members(path: Path) -> list[dict[str, Any]]:
    """A YAML or JSON list of members (or {"members": [...]}); `port` means protocol_port."""
    data = read_yaml(path)
    if isinstance(data, dict):
        data = data.get("members")
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise ConfigError(f"{path}: expected a list of members (address, protocol_port, ...)")
    return [{("protocol_port" if k == "port" else k): v for k, v in m.items()} for m in data]


@api_command(app, "batch", output="columns", waits=True)
def batch(
    cmd: Cmd,
    pool: PoolArg,
    file: Annotated[Path, typer.Argument(help="YAML or JSON list of members")],
) -> None:
    """Make a pool's members exactly those in FILE (one change: added, updated, removed)."""
    members = _read_members(file)
    pool_obj = res.find(cmd.api, res.POOL, pool)
    kind = res.members_of(pool_obj["id"])
    cmd.api.put(kind.path, {"members": members})
    cmd.settle(res.lb_id_of(cmd.api, pool_obj))
    cmd.show_list(res.listing(cmd.api, kind), kind.columns, "members")
