"""One HAProxy in master-worker mode: safe config installs (check, keep a -failed copy, atomic
rename), hitless reloads through the master socket, and the runtime API on the stats socket
for changes that need no reload (member weight, state, addition, removal)."""

from __future__ import annotations

import contextlib
import csv
import grp
import io
import os
import pwd
import signal
import socket
import subprocess
import time
from pathlib import Path

from shoal.agents.files import private_dir
from shoal.agents.l7.render import CHROOT_DIR
from shoal.errors import ShoalError

__all__ = ["ConfigRejectedError", "HAProxy", "RuntimeCommandError", "check_account"]


class ConfigRejectedError(ShoalError):
    """`haproxy -c` refused a configuration (the running one stays)."""


class RuntimeCommandError(ShoalError):
    """A runtime API command failed."""


def _unix(path: Path, command: str, timeout: float = 5.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(command.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)  # the master CLI answers once it sees the end of input
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def check_account(user: str, group: str) -> None:
    """The user and group HAProxy's workers run as must exist: HAProxy would refuse the
    configuration with a less helpful message."""
    if not user:
        return
    try:
        pwd.getpwnam(user)
        grp.getgrnam(group or user)
    except KeyError:
        raise ShoalError(
            f"HAProxy's workers run as {user}:{group or user}, which does not exist: create "
            f"it (adduser --system --group --no-create-home {user}) or set another user"
        ) from None


class HAProxy:
    def __init__(self, run_dir: Path, binary: str = "haproxy") -> None:
        self.run_dir = run_dir
        self.binary = binary
        self.config = run_dir / "haproxy.cfg"
        self.stats_socket = run_dir / "haproxy.sock"
        self.master_socket = run_dir / "master.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        # Owner-only: the configuration, sockets and log are the agent's. Workers chroot to
        # an empty directory nobody can write, before they drop root.
        private_dir(run_dir)
        self.chroot = run_dir / CHROOT_DIR
        self.chroot.mkdir(exist_ok=True)
        os.chmod(self.chroot, 0o555)

    # ---- configuration -----------------------------------------------------------------

    def check(self, text: str) -> None:
        candidate = self.run_dir / "haproxy.cfg.new"
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        proc = subprocess.run(
            [self.binary, "-c", "-q", "-f", str(candidate)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if proc.returncode != 0:
            os.replace(candidate, self.run_dir / "haproxy.cfg-failed")
            lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "ALERT" in ln]
            raise ConfigRejectedError("; ".join(lines[:3]) or "haproxy -c failed")

    def install(self, text: str) -> None:
        """Checks the configuration and makes it the one on disk, atomically."""
        self.check(text)
        os.replace(self.run_dir / "haproxy.cfg.new", self.config)

    def write_unchecked(self, text: str) -> None:
        """For member-only changes already applied at runtime: the file follows, so that the
        next reload keeps them."""
        tmp = self.run_dir / "haproxy.cfg.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, self.config)

    # ---- process -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.master_pid() is not None

    def master_pid(self) -> int | None:
        """The master's PID if one answers on the master socket (also one a previous agent
        started: HAProxy outlives agent restarts, like the L4 data plane)."""
        try:
            out = _unix(self.master_socket, "show proc", 1.0)
        except OSError:
            return None
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "master":
                return int(parts[0])
        return None

    def start(self) -> None:
        if self.running:
            return
        log_fd = os.open(
            self.run_dir / "haproxy.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        self.proc = subprocess.Popen(
            [self.binary, "-W", "-S", f"{self.master_socket},mode,600", "-f", str(self.config)],
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(log_fd)  # the child has its copy
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError):
                if "Name" in _unix(self.stats_socket, "show info", 1.0):
                    return
            if not self.running or time.monotonic() > deadline:
                raise ShoalError(f"HAProxy did not start (see {self.run_dir}/haproxy.log)")
            time.sleep(0.05)

    def reloads(self) -> int:
        return self._master_counts()[0]

    def _master_counts(self) -> tuple[int, int]:
        """(reloads, failed reloads) from the master's `show proc` line, e.g.
        `1162 master 2 [failed: 1] 0d00h00m02s 2.6.12`."""
        out = _unix(self.master_socket, "show proc")
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "master":
                failed = 0
                if len(parts) >= 5 and parts[3] == "[failed:":
                    failed = int(parts[4].rstrip("]"))
                return int(parts[2]), failed
        raise ShoalError(f"unexpected `show proc` answer: {out[:200]!r}")

    def reload(self) -> None:
        """Hitless: the master starts new workers on the installed config; old workers finish
        their connections (idle keep-alive ones close after their next response)."""
        if not self.running:
            self.start()
            return
        before, failed = self._master_counts()
        _unix(self.master_socket, "reload")
        deadline = time.monotonic() + 10
        while True:
            # The master re-executes itself: its socket refuses connections for a moment.
            with contextlib.suppress(OSError, ShoalError):
                counts = self._master_counts()
                if counts[0] != before:
                    break
            if time.monotonic() > deadline:
                raise ShoalError("HAProxy did not reload within 10 s")
            time.sleep(0.02)
        # The 2.6 master answers `reload` with nothing; a configuration `haproxy -c` passed
        # can still fail to load (descriptor limits): the old worker then goes on serving
        # the old one, and only the failed counter says so.
        if counts[1] != failed:
            raise ShoalError(
                f"HAProxy could not load the new configuration; the old one still serves "
                f"(see {self.run_dir}/haproxy.log)"
            )
        # The new worker serves once the stats socket answers again.
        while True:
            with contextlib.suppress(OSError):
                if "Name" in _unix(self.stats_socket, "show info", 1.0):
                    return
            if time.monotonic() > deadline:
                raise ShoalError("the new HAProxy worker is not answering")
            time.sleep(0.02)

    def stop(self, timeout: float = 10) -> None:
        """Soft stop (connections finish), then a hard one after timeout."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGUSR1)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            return
        pid = self.master_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while self.master_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.master_pid() == pid:  # still the same master: only then, the hard way
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    # ---- runtime API -------------------------------------------------------------------

    def command(self, cmd: str) -> str:
        try:
            out = _unix(self.stats_socket, cmd)
        except OSError as exc:
            raise RuntimeCommandError(f"{cmd}: {exc}") from None
        text = out.strip()
        if cmd.startswith("show "):
            return out
        if any(
            word in text
            for word in (
                "Unknown",
                "No such",
                "failed",
                "Require",
                "invalid",
                "Invalid",
                "not found",
                "can't",
                "cannot",
            )
        ):
            raise RuntimeCommandError(f"{cmd}: {text.splitlines()[0]}")
        return out

    def stats(self) -> list[dict[str, str]]:
        """`show stat` as rows (pxname, svname, scur, stot, status, bin, bout, ...)."""
        out = self.command("show stat")
        return list(csv.DictReader(io.StringIO(out.lstrip("# "))))
