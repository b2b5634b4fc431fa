"""How the agents and the CLI reach the controller: HTTPS verified against a CA bundle, plain
HTTP only to a loopback address or when asked for by name (--insecure-http), and secrets
read from files only their owner can read. One place, so both clients refuse the same way."""

from __future__ import annotations

import ipaddress
import os
import ssl
import stat
from pathlib import Path
from urllib.parse import urlsplit

from shoal.errors import ConfigError

__all__ = ["is_loopback_host", "read_secret_file", "verify_for"]


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def verify_for(
    url: str, ca_bundle: str | Path | None, insecure_http: bool
) -> ssl.SSLContext | bool:
    """What httpx's verify= gets for this controller URL. Refuses http:// off loopback
    unless insecure_http: a token sent there could be read on the way."""
    parts = urlsplit(url)
    if parts.scheme == "http":
        if not insecure_http and not is_loopback_host(parts.hostname or ""):
            raise ConfigError(
                f"{url}: plain HTTP would send credentials in the clear; use https:// "
                "(with --ca-bundle), or --insecure-http if the network is trusted"
            )
        return True
    if parts.scheme != "https":
        raise ConfigError(f"{url}: the controller URL must start with https:// or http://")
    if ca_bundle is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"CA bundle {ca_bundle}: {exc}") from None


def read_secret_file(path: Path, what: str = "credential") -> str:
    """A secret from a file that only its owner may read (mode 0600 or stricter)."""
    try:
        info = path.stat()
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the {what} file {path} is readable by others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}): chmod 600 it"
        )
    if info.st_uid != os.geteuid():
        raise ConfigError(f"the {what} file {path} belongs to another user")
    if not text:
        raise ConfigError(f"the {what} file {path} is empty")
    return text
