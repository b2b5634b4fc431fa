"""Arguments and options that several resource commands share."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

__all__ = [
    "Description",
    "Enable",
    "Flavor",
    "LbArg",
    "LbOption",
    "Name",
    "PoolArg",
    "Role",
    "upper",
]


def upper(value: str | None) -> str | None:
    """Octavia's enumerations are upper case; let people type `tcp`."""
    return value.upper() if value is not None else None


class Flavor(StrEnum):
    l4 = "l4"
    l7 = "l7"


LbArg = Annotated[str, typer.Argument(metavar="LB", help="load balancer id or name")]
PoolArg = Annotated[str, typer.Argument(metavar="POOL", help="pool id or name")]
LbOption = Annotated[str | None, typer.Option("--lb", help="load balancer id or name")]
Name = Annotated[str | None, typer.Option(help="name", show_default=False)]
Description = Annotated[str | None, typer.Option(help="description", show_default=False)]
Enable = Annotated[
    bool | None,
    typer.Option("--enable/--disable", help="admin state (up or down)", show_default=False),
]


class Role(StrEnum):
    admin = "admin"
    member = "member"
    reader = "reader"
