"""A throwaway PostgreSQL cluster for tests and benchmarks (never the machine's own cluster):
initdb into a temporary folder as the postgres user, listen on a free loopback port, remove
everything on stop."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from shoal.errors import ShoalError

__all__ = ["create_database", "init_cluster", "server_command", "throwaway_postgres"]


def _bin(name: str) -> str:
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    found = shutil.which(name)
    if not found:
        raise ShoalError(f"PostgreSQL's {name} is not installed (Debian package postgresql)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*cmd: str) -> None:
    proc = subprocess.run(
        ["runuser", "-u", "postgres", "--", *cmd],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode:
        raise ShoalError(f"{Path(cmd[0]).name} failed: {(proc.stderr or proc.stdout).strip()}")


def init_cluster(base: Path) -> Path:
    """A new cluster in base/data, owned by the postgres user (trust on loopback only: it
    listens on 127.0.0.1 and a socket in base). Returns the data directory."""
    base.mkdir(parents=True, exist_ok=True)
    shutil.chown(base, "postgres", "postgres")
    data = base / "data"
    _as_postgres(_bin("initdb"), "-D", str(data), "-A", "trust", "--no-sync", "-U", "postgres")
    return data


def server_command(data: Path, port: int) -> list[str]:
    """PostgreSQL in the foreground as the postgres user (for a supervisor to track)."""
    return [
        "runuser",
        "-u",
        "postgres",
        "--",
        _bin("postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-k",
        str(data.parent),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
    ]


def create_database(port: int, dbname: str) -> None:
    _as_postgres(_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", dbname)


@contextlib.contextmanager
def throwaway_postgres(dbname: str = "shoal") -> Iterator[str]:
    """Yields a SQLAlchemy URL (psycopg) of a fresh database; stops and removes it after."""
    base = Path(tempfile.mkdtemp(prefix="shoal-pg-"))
    shutil.chown(base, "postgres", "postgres")
    data = base / "data"
    port = _free_port()
    _as_postgres(_bin("initdb"), "-D", str(data), "-A", "trust", "--no-sync", "-U", "postgres")
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    _as_postgres(
        _bin("pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"), "-o", opts, "start"
    )
    try:
        _as_postgres(_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", dbname)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{dbname}"
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                _bin("pg_ctl"),
                "-D",
                str(data),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)
