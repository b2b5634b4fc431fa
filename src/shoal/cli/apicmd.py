"""What every command that talks to the controller shares, added by one decorator so the
commands themselves hold only their own options: --url/--token, -f/-c for output, --wait and
--wait-timeout for writes, and one-line errors with exit code 1."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import typer

from shoal.cli.client import ApiClient, client_settings
from shoal.cli.common import Format, handle_errors
from shoal.cli.output import show_list, show_object
from shoal.cli.wait import wait_for_lb

__all__ = ["Cmd", "api_command"]

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="controller URL (else $SHOAL_URL, the config file, or http://127.0.0.1:9876)",
        rich_help_panel="Connection",
        show_default=False,
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="API token (else $SHOAL_TOKEN or the config file)",
        rich_help_panel="Connection",
        show_default=False,
    ),
]
CaBundle = Annotated[
    str | None,
    typer.Option(
        "--ca-bundle",
        help="CA certificates to verify an https:// controller with (else $SHOAL_CA_BUNDLE "
        "or the config file)",
        rich_help_panel="Connection",
        show_default=False,
    ),
]
Fmt = Annotated[
    Format, typer.Option("-f", "--format", help="output format", rich_help_panel="Output")
]
Columns = Annotated[
    list[str] | None,
    typer.Option(
        "-c",
        "--column",
        help="show only this field (repeat for more)",
        rich_help_panel="Output",
        show_default=False,
    ),
]
Wait = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="wait until the load balancer has applied the change (ACTIVE) or refused it (ERROR)",
        rich_help_panel="Waiting",
    ),
]
WaitTimeout = Annotated[
    float,
    typer.Option("--wait-timeout", min=0, help="seconds --wait waits", rich_help_panel="Waiting"),
]

Output = Literal["none", "format", "columns"]


@dataclass
class Cmd:
    """A command's connection and output preferences."""

    api: ApiClient
    fmt: Format = Format.table
    columns: Sequence[str] = ()
    wait: bool = False
    wait_timeout: float = 120.0

    def show(self, obj: dict[str, Any], columns: Sequence[str]) -> None:
        show_object(obj, self.fmt, columns, self.columns)

    def show_list(self, objs: Sequence[dict[str, Any]], columns: Sequence[str], title: str) -> None:
        show_list(objs, self.fmt, columns, title, self.columns)

    def settle(self, lb_id: str, gone: bool = False) -> None:
        """With --wait, returns once the load balancer has applied the change."""
        if self.wait:
            wait_for_lb(self.api, lb_id, self.wait_timeout, gone)


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def _extra_options(output: Output, waits: bool) -> list[inspect.Parameter]:
    extra = [
        _option("url", Url, None),
        _option("token", Token, None),
        _option("ca_bundle", CaBundle, None),
    ]
    if output != "none":
        extra.append(_option("fmt", Fmt, Format.table))
    if output == "columns":
        extra.append(_option("column", Columns, None))
    if waits:
        extra += [_option("wait", Wait, False), _option("wait_timeout", WaitTimeout, 120.0)]
    return extra


@handle_errors
def _run(fn: Callable[..., None], opts: dict[str, Any], kwargs: dict[str, Any]) -> None:
    settings = client_settings(opts["url"], opts["token"], opts["ca_bundle"])
    with ApiClient.from_settings(settings) as api:
        cmd = Cmd(
            api,
            fmt=opts.get("fmt", Format.table),
            columns=opts.get("column") or (),
            wait=opts.get("wait", False),
            wait_timeout=opts.get("wait_timeout", 120.0),
        )
        fn(cmd, **kwargs)


def _own_parameters(
    fn: Callable[..., None], arguments: dict[str, Any], options: Callable[..., None] | None
) -> tuple[inspect.Signature, list[inspect.Parameter]]:
    sig = inspect.signature(fn, eval_str=True)
    own = [
        p.replace(annotation=arguments.get(p.name, p.annotation))
        for p in list(sig.parameters.values())[1:]  # all but cmd
        if p.kind != inspect.Parameter.VAR_KEYWORD
    ]
    if options is not None:
        shared = inspect.signature(options, eval_str=True).parameters.values()
        own += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in shared]
    return sig, own


def api_command(
    app: typer.Typer,
    name: str,
    *,
    output: Output = "none",
    waits: bool = False,
    arguments: dict[str, Any] | None = None,
    options: Callable[..., None] | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Registers fn(cmd: Cmd, ...) as a command. Typer reads the signature, so the shared
    options are added to it here and taken off again before fn is called. `arguments`
    replaces parameters' annotations (commands built for each kind of object); the
    parameters of `options` (a signature only) are added and reach fn's **kwargs, so that
    create and set declare their common options once."""

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        sig, own = _own_parameters(fn, arguments or {}, options)
        extra = _extra_options(output, waits)

        @functools.wraps(fn)
        def command(**kwargs: Any) -> None:
            opts = {p.name: kwargs.pop(p.name) for p in extra}
            _run(fn, opts, kwargs)

        params = own + extra
        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        app.command(name)(command)
        return fn

    return register
