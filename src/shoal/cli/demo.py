"""`shoal demo`."""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli.common import handle_errors, require_root


@handle_errors
def demo(
    requests: Annotated[int, typer.Option(help="HTTP requests to send")] = 300,
    wait: Annotated[
        bool | None, typer.Option("--wait/--no-wait", help="keep the lab until Ctrl-C")
    ] = None,
) -> None:
    """Build a lab in namespaces, send real traffic through a VIP, show where it went."""
    require_root("the demo")
    from shoal.lab.demo import run_demo

    run_demo(requests, wait)
