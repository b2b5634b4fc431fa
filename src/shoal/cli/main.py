"""The `shoal` command."""

from __future__ import annotations

import typer

from shoal import __version__
from shoal.cli import bench, dataplane, demo

app = typer.Typer(
    name="shoal",
    help="Shoal: load-balancer-as-a-service for private clouds.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(dataplane.app, name="dataplane")
app.add_typer(bench.app, name="bench")
app.command(name="demo")(demo.demo)


@app.command()
def version() -> None:
    """Print Shoal's version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
