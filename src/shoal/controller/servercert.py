"""The controller's own HTTPS certificate, issued by the internal CA at set-up (`shoal
controller issue-tls`): written as files the controller serves and the CA bundle agents
and the CLI verify it with."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shoal.controller.db.engine import Database
from shoal.controller.db.migrate import upgrade
from shoal.controller.services import certs
from shoal.controller.services.keyring import load_keyring
from shoal.controller.settings import ControllerSettings

__all__ = ["ServerFiles", "issue_server_files"]


@dataclass(frozen=True)
class ServerFiles:
    cert: Path  # leaf then the CA: what tls_cert names
    key: Path  # mode 0600: tls_key
    ca_bundle: Path  # what agents and the CLI get as --ca-bundle


def _write(path: Path, data: str, mode: int) -> None:
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def issue_server_files(
    settings: ControllerSettings,
    out_dir: Path,
    dns_names: list[str],
    ip_addresses: list[str],
    days: int = 365,
) -> ServerFiles:
    upgrade(settings.database_url)
    db = Database(settings.database_url)
    keyring = load_keyring(settings)
    try:
        with db.write() as session:
            parsed = certs.issue(
                session, keyring, "shoal-controller", dns_names, days, ip_addresses
            )
            ca = certs.ca_certificate(session, keyring)
    finally:
        db.dispose()
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = ServerFiles(out_dir / "controller.crt", out_dir / "controller.key", out_dir / "ca.pem")
    _write(files.key, parsed.key_pem.decode(), 0o600)
    _write(files.cert, parsed.pem(parsed.leaf) + ca, 0o644)
    _write(files.ca_bundle, ca, 0o644)
    return files
