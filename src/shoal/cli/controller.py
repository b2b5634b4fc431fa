"""`shoal controller`: run the API server, migrate its database, make the first admin
token (written straight into the database, for an operator bootstrapping a new controller),
and rotate the keys that encrypt private keys at rest."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shoal.cli.common import console, err_console, handle_errors
from shoal.cli.options import Role
from shoal.errors import ConfigError

if TYPE_CHECKING:
    from shoal.controller.settings import ControllerSettings

app = typer.Typer(help="Run and set up the controller.", no_args_is_help=True)
token_app = typer.Typer(help="Tokens written directly into the database.", no_args_is_help=True)
app.add_typer(token_app, name="token")

Config = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="settings file (else $SHOAL_CONTROLLER_CONFIG)"),
]
Db = Annotated[
    str | None,
    typer.Option("--db", help="database URL: sqlite:///FILE or postgresql+psycopg://..."),
]


def _settings(config: Path | None, **overrides: object) -> ControllerSettings:
    # The controller's modules (FastAPI, SQLAlchemy) load only for these commands.
    from shoal.controller.settings import load_settings

    return load_settings(config, **overrides)


@contextlib.contextmanager
def _database(settings: ControllerSettings) -> Iterator[None]:
    """Database failures as one line naming the database (without its password)."""
    from alembic.util.exc import CommandError
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    url = make_url(settings.database_url)
    try:
        if url.get_backend_name() == "sqlite" and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        yield
    except (SQLAlchemyError, CommandError, OSError) as exc:
        shown = url.render_as_string(hide_password=True)
        raise ConfigError(f"database {shown}: {str(exc).splitlines()[0]}") from None


def _migrate(settings: ControllerSettings) -> None:
    from shoal.controller.db.migrate import upgrade

    with _database(settings):
        upgrade(settings.database_url)


@app.command()
@handle_errors
def serve(
    config: Config = None,
    listen: Annotated[str | None, typer.Option(help="HOST:PORT (default 127.0.0.1:9876)")] = None,
    db: Db = None,
    state_dir: Annotated[Path | None, typer.Option(help="where the default SQLite lives")] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="HTTPS certificate, leaf first (else tls_cert)")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="its private key (else tls_key)")] = None,
    insecure_http: Annotated[
        bool,
        typer.Option(
            "--insecure-http", help="serve plain HTTP off loopback (a trusted network only)"
        ),
    ] = False,
    log_format: Annotated[
        str | None, typer.Option(help="text or json (one object per line); else log_format")
    ] = None,
) -> None:
    """Serve the API (Octavia v2 at /v2/lbaas, Shoal's at /v2/shoal); migrates first.
    HTTPS with a certificate; plain HTTP only on loopback unless --insecure-http."""
    import uvicorn

    from shoal.controller.app import SERVER_HTTP, SERVER_LOOP, create_app

    settings = _settings(
        config,
        listen=listen,
        database_url=db,
        state_dir=state_dir,
        tls_cert=tls_cert,
        tls_key=tls_key,
        insecure_http=insecure_http or None,
        log_format=log_format,
    )
    try:
        host, port = settings.host_port
    except ValueError:
        raise ConfigError(f"listen must be HOST:PORT, not {settings.listen!r}") from None
    settings.check_transport()
    with _database(settings):
        application = create_app(settings)
    # One line per request, with its x-openstack-request-id, replaces uvicorn's access log.
    from shoal.controller.requestid import log_context
    from shoal.logs import setup_logging

    if settings.log_format == "json":
        setup_logging("info", "json", context=log_context)
    else:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level="info",
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        access_log=False,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        loop=SERVER_LOOP,
        http=SERVER_HTTP,
    )


@app.command("issue-tls")
@handle_errors
def issue_tls(
    out_dir: Annotated[Path, typer.Option(help="where controller.crt, .key and ca.pem go")],
    name: Annotated[
        list[str] | None, typer.Option("--name", help="DNS name agents use (repeat)")
    ] = None,
    ip: Annotated[
        list[str] | None, typer.Option("--ip", help="address agents use (repeat)")
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=3650, help="validity")] = 365,
    config: Config = None,
    db: Db = None,
) -> None:
    """Issue the controller's HTTPS certificate from the internal CA, for tls_cert/tls_key;
    give ca.pem to the agents and the CLI (--ca-bundle)."""
    import ipaddress

    from shoal.controller.servercert import issue_server_files

    for address in ip or []:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError(f"--ip {address!r} is not an IP address") from None
    settings = _settings(config, database_url=db)
    with _database(settings):
        files = issue_server_files(settings, out_dir, name or ["localhost"], ip or [], days)
    console.print(
        f"tls_cert: {files.cert}\ntls_key: {files.key}\nCA bundle for clients: {files.ca_bundle}",
        highlight=False,
    )


@app.command()
@handle_errors
def migrate(config: Config = None, db: Db = None) -> None:
    """Bring the database to the latest schema."""
    _migrate(_settings(config, database_url=db))
    console.print("the database schema is up to date")


@token_app.command("create")
@handle_errors
def token_create(
    name: Annotated[str, typer.Option(help="who or what uses it")],
    project: Annotated[str, typer.Option(help="the project it acts in")],
    role: Annotated[Role, typer.Option(help="what it may do")],
    config: Config = None,
    db: Db = None,
) -> None:
    """Create a token in the database and print its secret (shown this once)."""
    from shoal.controller.auth import new_secret, secret_hash
    from shoal.controller.db.engine import Database
    from shoal.controller.db.models import Token

    settings = _settings(config, database_url=db)
    _migrate(settings)
    secret = new_secret()
    with _database(settings):
        database = Database(settings.database_url)
        try:
            with database.write() as session:
                token = Token(
                    name=name, project_id=project, role=role.value, secret_hash=secret_hash(secret)
                )
                session.add(token)
        finally:
            database.dispose()
    err_console.print(f"{role.value} token {name} for project {project} created; its secret:")
    typer.echo(secret)


@app.command("rotate-key")
@handle_errors
def rotate_key(
    config: Config = None,
    db: Db = None,
    new_key: Annotated[
        bool,
        typer.Option(
            help="make a new key first (--no-new-key: re-encrypt with the newest key file, "
            "e.g. one already copied to every controller)"
        ),
    ] = True,
    remove_old: Annotated[
        bool, typer.Option(help="then delete the key files nothing is encrypted with")
    ] = False,
) -> None:
    """Re-encrypt every stored secret (TLS private keys, the internal CA) with a new key, in
    one transaction: all of them or, if one does not decrypt, none."""
    from shoal.controller.db.engine import Database
    from shoal.controller.services import keyring

    settings = _settings(config, database_url=db)
    _migrate(settings)
    with _database(settings):
        database = Database(settings.database_url)
        try:
            with database.read() as session:  # every secret decrypts before a key is made
                if keyring.usage(session):
                    keyring.verify(session, keyring.load_keyring(settings, create=False))
            if new_key:
                path = keyring.new_key_file(settings.key_directory)
                err_console.print(f"new key {path.stem} in {path}")
            ring = keyring.load_keyring(settings)
            with database.write() as session:
                count = keyring.rotate(session, ring)
        finally:
            database.dispose()
    err_console.print(f"{count} stored secrets re-encrypted with key {ring.active}")
    unused = [settings.key_directory / f"{k}.key" for k in ring.keys if k != ring.active]
    if keyring.legacy_key_file(settings).exists():
        unused.append(keyring.legacy_key_file(settings))
    if remove_old:
        for path in unused:
            path.unlink()
            err_console.print(f"removed {path}")
    elif unused:
        err_console.print(
            f"no longer used: {', '.join(map(str, unused))}; remove them once every "
            f"controller has key {ring.active} (or run again with --remove-old)"
        )


@app.command("keys")
@handle_errors
def keys(config: Config = None, db: Db = None) -> None:
    """The keys this controller loads, and how many stored secrets each encrypts."""
    from shoal.controller.db.engine import Database
    from shoal.controller.services import keyring

    settings = _settings(config, database_url=db)
    _migrate(settings)
    with _database(settings):
        database = Database(settings.database_url)
        try:
            with database.read() as session:
                counts = keyring.usage(session)
        finally:
            database.dispose()
    ring = keyring.load_keyring(settings, create=False)
    for kid in sorted(set(ring.keys) | set(counts) | {ring.active}):
        mark = "active" if kid == ring.active else ("loaded" if kid in ring.keys else "")
        typer.echo(f"{kid}\t{counts.get(kid, 0)}\t{mark}")
