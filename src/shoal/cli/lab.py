"""`shoal lab up | down | status`: the whole system in network namespaces on this machine."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shoal.cli.common import handle_errors, require_root

app = typer.Typer(help="A lab of the whole system in network namespaces.", no_args_is_help=True)
console = Console(stderr=True)
Prefix = Annotated[str, typer.Option(help="name prefix of the lab's namespaces")]


def _lab(
    prefix: str,
    l4_nodes: int = 2,
    l7_clusters: int = 2,
    l7_per_cluster: int = 2,
    prometheus: bool = False,
    controllers: int = 1,
) -> Any:
    from shoal.lab.lab import Lab, LabSpec

    return Lab(
        LabSpec(
            prefix=prefix,
            l4_nodes=l4_nodes,
            l7_clusters=l7_clusters,
            l7_nodes_per_cluster=l7_per_cluster,
            prometheus=prometheus,
            controllers=controllers,
        ),
        progress=lambda msg: console.print(f"[dim]…[/dim] {msg}"),
    )


@app.command()
@handle_errors
def up(
    prefix: Prefix = "shoal",
    l4_nodes: Annotated[int, typer.Option("--l4-nodes", min=1, max=8)] = 2,
    l7_clusters: Annotated[
        int, typer.Option("--l7-clusters", min=0, max=8, help="0: no L7 tier")
    ] = 2,
    l7_per_cluster: Annotated[int, typer.Option("--l7-nodes-per-cluster", min=1, max=8)] = 2,
    prometheus: Annotated[
        bool, typer.Option("--prometheus", help="also a Prometheus scraping every node")
    ] = False,
    controllers: Annotated[
        int,
        typer.Option(
            "--controllers",
            min=1,
            max=4,
            help="controller processes; 2 or more share one PostgreSQL, agents get every URL",
        ),
    ] = 1,
) -> None:
    """Build the lab (idempotent: an intact lab is left as it is)."""
    require_root("the lab")
    lab = _lab(prefix, l4_nodes, l7_clusters, l7_per_cluster, prometheus, controllers)
    try:
        state = lab.up()
    except KeyboardInterrupt:
        console.print("interrupted: tearing the lab down")
        lab.down(quiet=True)
        raise typer.Exit(130) from None
    console.print(
        f"[green]lab {prefix} is up[/green]: {len(state.namespaces)} namespaces, "
        f"{len(state.processes)} processes"
    )
    shoal = Path(sys.executable).parent / "shoal"
    console.print(
        f"API: ip netns exec {state.ctl_ns} env SHOAL_URL={state.controller_url} "
        f"SHOAL_CA_BUNDLE={state.ca_bundle} "
        f"SHOAL_TOKEN={state.admin_token} {shoal} lb list",
        soft_wrap=True,
    )
    if prometheus:
        console.print(
            f"Prometheus: ip netns exec {state.ctl_ns} curl -s "
            "'http://127.0.0.1:9090/api/v1/query?query=up'",
            soft_wrap=True,
        )


@app.command()
@handle_errors
def down(prefix: Prefix = "shoal") -> None:
    """Stop every process the lab started and delete its namespaces."""
    require_root("the lab")
    _lab(prefix).down()


@app.command()
@handle_errors
def status(
    prefix: Prefix = "shoal", as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Namespaces, addresses, VIPs, nodes and processes."""
    require_root("the lab")
    info = _lab(prefix).status()
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    if not info["up"] and "namespaces" not in info:
        console.print(f"lab {prefix} is down")
        return
    out = Console()
    out.print(f"lab {prefix}: {'up' if info['up'] else '[red]damaged[/red] (run lab up)'}")
    hosts = Table(title="hosts", title_justify="left")
    for col in ("name", "namespace", "address", "role"):
        hosts.add_column(col)
    for name, h in info["hosts"].items():
        hosts.add_row(name, h["ns"], h["ip"], h.get("role", ""))
    out.print(hosts)
    procs = Table(title="processes", title_justify="left")
    for col in ("name", "pid", "running"):
        procs.add_column(col)
    for name, p in info["processes"].items():
        procs.add_row(name, str(p["pid"]), "yes" if p["running"] else "[red]no[/red]")
    out.print(procs)
    for vip in info.get("vips", []):
        out.print(
            f"VIP {vip['vip']} ({vip['name'] or vip['load_balancer']}): "
            f"{vip['status']}, ECMP via {', '.join(vip['ecmp']) or 'no node'}"
        )
