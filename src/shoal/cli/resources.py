"""The kinds of objects the commands handle, finding one by id or name, the write flow
(change, wait, show) and the show/list/delete commands that are the same for every kind."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlsplit

import typer

from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.client import ApiClient
from shoal.cli.common import console
from shoal.cli.options import LbOption
from shoal.errors import ShoalError

__all__ = [
    "CERTIFICATE",
    "HEALTHMONITOR",
    "LB",
    "LISTENER",
    "MEMBER",
    "NODE",
    "POOL",
    "TOKEN",
    "Kind",
    "create",
    "describe",
    "find",
    "given",
    "lb_id_of",
    "list_command",
    "listing",
    "members_of",
    "remove",
    "show_command",
    "standard_commands",
    "unique",
    "update",
]

STATUS = ("provisioning_status", "operating_status")


@dataclass(frozen=True)
class Kind:
    key: str  # the JSON wrapper of one object
    path: str
    columns: tuple[str, ...]  # the useful ones, for tables and -f value
    label: str
    name_filter: bool = True  # the API filters lists by ?name=
    metavar: str = ""

    @property
    def collection(self) -> str:
        """The JSON key of a list."""
        return f"{self.key}s"

    def url(self, ident: str) -> str:
        return f"{self.path}/{quote(ident, safe='')}"

    def argument(self) -> Any:
        """The Typer argument for one object of this kind."""
        metavar = self.metavar or self.label.upper().replace(" ", "_")
        return Annotated[str, typer.Argument(metavar=metavar, help=f"{self.label} id or name")]


LB = Kind(
    "loadbalancer",
    "/v2/lbaas/loadbalancers",
    ("id", "name", "vip_address", *STATUS),
    "load balancer",
    metavar="LB",
)
LISTENER = Kind(
    "listener",
    "/v2/lbaas/listeners",
    ("id", "name", "protocol", "protocol_port", "default_pool_id", *STATUS),
    "listener",
)
POOL = Kind("pool", "/v2/lbaas/pools", ("id", "name", "protocol", "lb_algorithm", *STATUS), "pool")
MEMBER = Kind(
    "member",
    "/v2/lbaas/pools/{pool}/members",
    ("id", "name", "address", "protocol_port", "weight", "backup", *STATUS),
    "member",
)
HEALTHMONITOR = Kind(
    "healthmonitor",
    "/v2/lbaas/healthmonitors",
    ("id", "name", "type", "delay", "timeout", "max_retries", *STATUS),
    "health monitor",
)
NODE = Kind(
    "node",
    "/v2/shoal/nodes",
    ("id", "name", "role", "cluster", "address", "admin_state", "operating_status", "last_seen"),
    "node",
    name_filter=False,
)
CERTIFICATE = Kind(
    "certificate",
    "/v2/shoal/certificates",
    ("id", "name", "common_name", "dns_names", "not_after", "expires_in_days", "source"),
    "certificate",
    name_filter=False,
    metavar="CERT",
)
TOKEN = Kind(
    "token",
    "/v2/shoal/tokens",
    ("id", "name", "project_id", "role", "created_at", "expires_at"),
    "token",
    name_filter=False,
)


def members_of(pool_id: str) -> Kind:
    return replace(MEMBER, path=MEMBER.path.format(pool=quote(pool_id, safe="")))


def describe(obj: dict[str, Any]) -> str:
    if obj.get("name"):
        return str(obj["name"])
    if "address" in obj and "protocol_port" in obj:
        return f"{obj['address']}:{obj['protocol_port']}"
    return str(obj["id"])


def unique(kind: Kind, ref: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        raise ShoalError(f"no {kind.label} {ref!r} (not a name, not an id)")
    if len(rows) > 1:
        ids = ", ".join(r["id"] for r in rows)
        raise ShoalError(f"{len(rows)} {kind.label}s match {ref!r} ({ids}): use an id")
    return rows[0]


def find(api: ApiClient, kind: Kind, ref: str) -> dict[str, Any]:
    """The one object whose name or id is ref."""
    if kind.name_filter:
        rows: list[dict[str, Any]] = api.get(kind.path, name=ref)[kind.collection]
        if not rows:  # an id, or the API's own "could not be found"
            obj: dict[str, Any] = api.get(kind.url(ref))[kind.key]
            return obj
        return unique(kind, ref, rows)
    every = listing(api, kind)
    by_id = [o for o in every if o["id"] == ref]
    return unique(kind, ref, by_id or [o for o in every if o.get("name") == ref])


def listing(api: ApiClient, kind: Kind, **params: Any) -> list[dict[str, Any]]:
    """Every object, following the API's pages (1000 at most each)."""
    page = api.get(kind.path, **params)
    rows: list[dict[str, Any]] = page[kind.collection]
    while True:
        links = page.get(f"{kind.collection}_links") or []
        following = [link["href"] for link in links if link.get("rel") == "next"]
        if not following:
            return rows
        # Only the query is taken: the link's host is as the controller saw itself.
        page = api.get(kind.path, **dict(parse_qsl(urlsplit(following[0]).query)))
        rows += page[kind.collection]


def lb_id_of(api: ApiClient, obj: dict[str, Any]) -> str:
    """The load balancer an object belongs to (a health monitor's, through its pool)."""
    if obj.get("loadbalancers"):
        return str(obj["loadbalancers"][0]["id"])
    if obj.get("pools"):
        return lb_id_of(api, api.get(POOL.url(obj["pools"][0]["id"]))["pool"])
    return str(obj["id"])  # a load balancer itself


def given(**fields: Any) -> dict[str, Any]:
    """The options the user gave (None = not given)."""
    return {k: v for k, v in fields.items() if v is not None}


def _finish(cmd: Cmd, kind: Kind, obj: dict[str, Any], lb_id: str | None) -> None:
    """After a write: with --wait, wait for the load balancer and show the object as it is
    then; else show what the API answered (PENDING_*)."""
    if cmd.wait:
        cmd.settle(lb_id or lb_id_of(cmd.api, obj))
        obj = cmd.api.get(kind.url(obj["id"]))[kind.key]
    cmd.show(obj, kind.columns)


def create(cmd: Cmd, kind: Kind, body: dict[str, Any], lb_id: str | None = None) -> None:
    _finish(cmd, kind, cmd.api.post(kind.path, {kind.key: body})[kind.key], lb_id)


def update(
    cmd: Cmd, kind: Kind, obj: dict[str, Any], changes: dict[str, Any], lb_id: str | None = None
) -> None:
    if not changes:
        raise typer.BadParameter("nothing to change: give at least one option")
    _finish(cmd, kind, cmd.api.put(kind.url(obj["id"]), {kind.key: changes})[kind.key], lb_id)


def remove(
    cmd: Cmd, kind: Kind, obj: dict[str, Any], lb_id: str | None = None, **params: Any
) -> None:
    lb_id = lb_id or lb_id_of(cmd.api, obj)
    cmd.api.delete(kind.url(obj["id"]), **params)
    cmd.settle(lb_id, gone=kind == LB)
    console.print(f"deleted {kind.label} {describe(obj)}", highlight=False)


def show_command(app: typer.Typer, kind: Kind) -> None:
    def show(cmd: Cmd, ref: str) -> None:
        cmd.show(find(cmd.api, kind, ref), kind.columns)

    show.__doc__ = f"Show a {kind.label}."
    api_command(app, "show", output="columns", arguments={"ref": kind.argument()})(show)


def list_command(app: typer.Typer, kind: Kind, by_lb: bool = False) -> None:
    def list_(cmd: Cmd, lb: str | None = None) -> None:
        lb_id = find(cmd.api, LB, lb)["id"] if lb else None
        rows = listing(cmd.api, kind, loadbalancer_id=lb_id)
        cmd.show_list(rows, kind.columns, f"{kind.label}s")

    def list_all(cmd: Cmd) -> None:
        list_(cmd)

    command = list_ if by_lb else list_all
    command.__doc__ = f"List {kind.label}s" + (", all or one load balancer's." if by_lb else ".")
    api_command(app, "list", output="columns", arguments={"lb": LbOption})(command)


def standard_commands(app: typer.Typer, kind: Kind, by_lb: bool = False) -> None:
    """list, show and delete."""
    list_command(app, kind, by_lb)
    show_command(app, kind)
    delete_command(app, kind)


def delete_command(app: typer.Typer, kind: Kind) -> None:
    def delete(cmd: Cmd, ref: str) -> None:
        remove(cmd, kind, find(cmd.api, kind, ref))

    delete.__doc__ = f"Delete a {kind.label}."
    api_command(app, "delete", waits=True, arguments={"ref": kind.argument()})(delete)
