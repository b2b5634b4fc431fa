"""`shoal demo`."""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.cli.common import handle_errors, require_root


@handle_errors
def demo(
    requests: Annotated[int, typer.Option(help="HTTP requests to send")] = 300,
    l4_nodes: Annotated[int, typer.Option("--l4-nodes", min=1, max=8)] = 2,
    wait: Annotated[
        bool | None, typer.Option("--wait/--no-wait", help="keep the lab until Ctrl-C")
    ] = None,
) -> None:
    """The whole system in namespaces: a load balancer through the API, real traffic, where it
    went (per backend and per L4 node); Ctrl-C tears it down."""
    require_root("the demo")
    from shoal.lab.demo import run_demo

    run_demo(requests, wait, l4_nodes)
