"""How API objects are printed: a rich table (the useful columns, statuses coloured), JSON
(the API objects as they came) or values (whitespace-separated, one object per line)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from shoal.cli.common import Format, console

__all__ = ["cell", "print_json", "show_list", "show_object", "status_style", "status_text"]

GREEN = {"ACTIVE", "ONLINE"}
PENDING = {"PENDING_CREATE", "PENDING_UPDATE", "PENDING_DELETE"}
YELLOW = PENDING | {"DEGRADED", "DRAINING", "NO_MONITOR"}
RED = {"ERROR", "OFFLINE"}
STATUS_KEYS = {"provisioning_status", "operating_status", "admin_state"}
HEADERS = {  # narrower table headers, so that ids fit
    "provisioning_status": "provisioning",
    "operating_status": "operating",
    "protocol_port": "port",
    "lb_algorithm": "algorithm",
    "default_pool_id": "default pool",
    "max_retries": "retries",
}


def status_style(value: str) -> str:
    if value in GREEN:
        return "green"
    if value in YELLOW:
        return "yellow"
    return "red" if value in RED else ""


def status_text(value: str) -> Text:
    return Text(value, style=status_style(value))


def cell(value: Any) -> str:
    """One value as a short string: references ([{"id": ...}]) become their ids."""
    if value is None or value == "":
        return "-"  # keeps -f value's columns apart
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if all(isinstance(v, dict) and set(v) == {"id"} for v in value):
            return ",".join(v["id"] for v in value) or "-"
        return ",".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":")) if value else "-"
    return str(value)


def _rich_cell(key: str, value: Any) -> Text:
    text = cell(value)
    return status_text(text) if key in STATUS_KEYS else Text(text)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _pick(objects: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    unknown = [c for c in columns if objects and c not in objects[0]]
    if unknown:
        raise typer.BadParameter(
            f"no column {unknown[0]!r}; there are: {', '.join(objects[0])}", param_hint="-c"
        )
    return list(columns)


def show_list(
    objects: Sequence[dict[str, Any]],
    fmt: Format,
    columns: Sequence[str],
    title: str,
    chosen: Sequence[str] = (),
) -> None:
    cols = _pick(objects, chosen or columns)
    if fmt == Format.json:
        print_json([{c: o.get(c) for c in chosen} if chosen else o for o in objects])
        return
    if fmt == Format.value:
        for obj in objects:
            sys.stdout.write(" ".join(cell(obj.get(c)) for c in cols) + "\n")
        return
    if not objects:
        console.print(f"no {title}", style="dim")
        return
    table = Table(title=title, title_justify="left")
    for c in cols:
        table.add_column(HEADERS.get(c, c), overflow="fold")  # ids whole, for copying
    for obj in objects:
        table.add_row(*(_rich_cell(c, obj.get(c)) for c in cols))
    console.print(table)


def show_object(
    obj: dict[str, Any], fmt: Format, columns: Sequence[str], chosen: Sequence[str] = ()
) -> None:
    """Table: every field, one per row; value: the useful (or chosen) columns on one line."""
    cols = _pick([obj], chosen or columns)
    if fmt == Format.json:
        print_json({c: obj.get(c) for c in chosen} if chosen else obj)
    elif fmt == Format.value:
        sys.stdout.write(" ".join(cell(obj.get(c)) for c in cols) + "\n")
    else:
        table = Table(show_header=True)
        table.add_column("field")
        table.add_column("value", overflow="fold")
        for key in chosen or obj:
            table.add_row(key, _rich_cell(key, obj.get(key)))
        console.print(table)
