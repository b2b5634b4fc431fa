"""`shoal certificate`: TLS certificates for TERMINATED_HTTPS listeners. Keys go up once and
never come back; expiry shows everywhere, with a warning under 30 days."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.common import console, err_console
from shoal.cli.resources import CERTIFICATE, describe, find, listing, show_command
from shoal.errors import ConfigError

app = typer.Typer(help="TLS certificates for HTTPS listeners.", no_args_is_help=True)
show_command(app, CERTIFICATE)

PemFile = Annotated[Path | None, typer.Option(help="PEM file", show_default=False)]


def _read(path: Path, what: str, binary: bool = False) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if binary:
        return base64.b64encode(data).decode()
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"the {what} {path} is not PEM text (PKCS#12? use --pkcs12)") from None


def warn_expiring(certs: list[dict[str, Any]]) -> None:
    for c in certs:
        if c.get("expiring_soon"):
            days = c["expires_in_days"]
            when = f"in {days} days" if days >= 0 else f"{-days} days ago"
            err_console.print(
                f"warning: certificate {describe(c)} ({c['id']}) expires {when} ({c['not_after']})",
                style="yellow",
                highlight=False,
            )


def _created(cmd: Cmd, body: dict[str, Any]) -> None:
    cert = cmd.api.post(CERTIFICATE.path, {"certificate": body})["certificate"]
    cmd.show(cert, CERTIFICATE.columns)
    warn_expiring([cert])


@api_command(app, "upload", output="columns")
def upload(
    cmd: Cmd,
    name: Annotated[str, typer.Option(help="a name to find it by")] = "",
    cert: PemFile = None,
    key: PemFile = None,
    chain: Annotated[
        Path | None, typer.Option(help="PEM file of the intermediates", show_default=False)
    ] = None,
    pkcs12: Annotated[
        Path | None, typer.Option(help="PKCS#12 file instead of PEM files", show_default=False)
    ] = None,
    passphrase: Annotated[
        str | None,
        typer.Option(help="of the key or the PKCS#12 file", envvar="SHOAL_CERT_PASSPHRASE"),
    ] = None,
    project: Annotated[str | None, typer.Option(help="for another project (admins)")] = None,
) -> None:
    """Upload a certificate with its key and chain (PEM files, or one PKCS#12 file)."""
    body: dict[str, Any] = {"name": name}
    if pkcs12 is not None:
        if cert or key or chain:
            raise typer.BadParameter("give --pkcs12 alone, or --cert and --key (and --chain)")
        body["pkcs12"] = _read(pkcs12, "PKCS#12 file", binary=True)
    elif cert is not None and key is not None:
        body["certificate"] = _read(cert, "certificate")
        body["private_key"] = _read(key, "private key")
        if chain is not None:
            body["chain"] = _read(chain, "chain")
    else:
        raise typer.BadParameter("give --cert and --key (PEM files), or --pkcs12")
    if passphrase:
        body["passphrase"] = passphrase
    if project:
        body["project_id"] = project
    _created(cmd, body)


@api_command(app, "issue", output="columns")
def issue(
    cmd: Cmd,
    common_name: Annotated[str, typer.Option(help="the service's host name")],
    dns_name: Annotated[
        list[str] | None, typer.Option(help="another name it answers to (repeat)")
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=825, help="validity")] = 90,
    name: Annotated[str, typer.Option(help="a name to find it by")] = "",
) -> None:
    """Issue a certificate from the controller's internal CA (for internal services)."""
    spec = {"common_name": common_name, "dns_names": dns_name or [], "days": days}
    _created(cmd, {"name": name, "issue": spec})


@api_command(app, "list", output="columns")
def list_(cmd: Cmd) -> None:
    """List certificates, with their expiry."""
    rows = listing(cmd.api, CERTIFICATE)
    cmd.show_list(rows, CERTIFICATE.columns, "certificates")
    warn_expiring(rows)


@api_command(app, "delete", arguments={"ref": CERTIFICATE.argument()})
def delete(cmd: Cmd, ref: str) -> None:
    """Delete a certificate no listener uses."""
    cert = find(cmd.api, CERTIFICATE, ref)
    cmd.api.delete(CERTIFICATE.url(cert["id"]))
    console.print(f"deleted certificate {describe(cert)}", highlight=False)


@api_command(app, "ca")
def ca(cmd: Cmd) -> None:
    """Print the internal CA's certificate (PEM), for clients to trust."""
    typer.echo(cmd.api.get("/v2/shoal/ca")["ca"]["certificate"], nl=False)
