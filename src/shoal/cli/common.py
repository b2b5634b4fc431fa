"""What every CLI command shares: output formats, one-line errors, and exit codes
(0 ok, 1 refused or failed, 2 usage)."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from shoal.errors import ShoalError

__all__ = ["Format", "console", "fail", "handle_errors", "print_rows", "require_root", "state_dir"]

console = Console()
err_console = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")


class Format(StrEnum):
    table = "table"
    json = "json"
    value = "value"


def fail(message: str, code: int = 1) -> None:
    # Plain write: rich would wrap at 80 columns when stderr is not a terminal, and scripts
    # read this line.
    sys.stderr.write(f"shoal: error: {' '.join(message.split())}\n")
    raise typer.Exit(code)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Shoal's errors as one `shoal: error: ...` line and exit code 1; an unexpected exception
    (a bug) too, with its traceback when SHOAL_DEBUG is set."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        debug = bool(os.environ.get("SHOAL_DEBUG"))
        try:
            return fn(*args, **kwargs)
        except ShoalError as exc:
            if debug:
                sys.stderr.write(f"{exc}\n")
            fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise  # unreachable: fail() raises
        except (typer.Exit, typer.BadParameter, typer.Abort):
            raise
        except KeyboardInterrupt:
            sys.stderr.write("shoal: interrupted\n")
            raise typer.Exit(130) from None
        except Exception as exc:
            if debug:
                raise
            fail(f"unexpected {type(exc).__name__}: {exc} (SHOAL_DEBUG=1 shows the traceback)")
            raise

    return wrapper


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        fail(f"{what} needs root (BPF, XDP and network namespaces)")


def state_dir() -> Path:
    return Path(os.environ.get("SHOAL_STATE_DIR", "/var/lib/shoal"))


def print_rows(rows: Sequence[dict[str, Any]], fmt: Format, title: str | None = None) -> None:
    if fmt == Format.json:
        sys.stdout.write(json.dumps(list(rows), indent=2, default=str) + "\n")
        return
    if fmt == Format.value:
        for row in rows:
            sys.stdout.write(" ".join(str(v) for v in row.values()) + "\n")
        return
    if not rows:
        console.print(f"[dim]no {title or 'rows'}[/dim]")
        return
    table = Table(title=title, title_justify="left")
    for key in rows[0]:
        table.add_column(key)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
