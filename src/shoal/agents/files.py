"""Files and directories the agents write: owner-only, whatever the umask. The state and run
directories hold desired states and certificate bundles, so their modes are set explicitly
(also on directories an older agent created with the default umask)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["private_dir", "write_private"]


def private_dir(path: Path) -> Path:
    """Creates path (and missing parents, with the usual modes) and makes it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Replaces path atomically with a 0600 file holding text; the directory must exist."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # O_CREAT's mode is masked by the umask; this is not
        f.write(text)
    os.replace(tmp, path)
