"""netsniff-ng's trafgen as an independent traffic source (AF_PACKET with an mmap'ed TX ring,
through the kernel's transmit path): the same frames as Shoal's own generator, sent from user
space, so a figure that only one generator shows is suspect.

trafgen is optional (Debian package netsniff-ng); `binary()` is None without it. It runs as one
process on one CPU, bounded by a packet count (-n) and stopped by its PID after a time bound.
It is told not to touch the machine: no socket-memory sysctls (-A), no IRQ affinity (-Q)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["binary", "running"]

CANDIDATES = ("/usr/sbin/trafgen", "/usr/bin/trafgen")


def binary() -> str | None:
    """Path of trafgen, or None when netsniff-ng is not installed."""
    found = shutil.which("trafgen")
    if found:
        return found
    return next((c for c in CANDIDATES if os.access(c, os.X_OK)), None)


def config_text(frames: Sequence[bytes]) -> str:
    """A trafgen packet configuration: one static packet per frame, sent round robin (static
    packets are trafgen's fastest path: no per-packet rewriting)."""
    return "\n".join("{ " + ", ".join(f"0x{b:02x}" for b in frame) + " }" for frame in frames)


@contextlib.contextmanager
def running(
    ns: str, ifname: str, frames: Sequence[bytes], *, packets: int, cpu: int
) -> Iterator[subprocess.Popen[bytes]]:
    """trafgen sending frames out of ifname inside ns until `packets` are sent or the block
    ends (then it is stopped by its PID, SIGINT then SIGKILL)."""
    exe = binary()
    if exe is None:
        raise FileNotFoundError("trafgen (Debian package netsniff-ng) is not installed")
    with tempfile.TemporaryDirectory(prefix="shoal-trafgen-") as tmp:
        conf = Path(tmp) / "frames.cfg"
        conf.write_text(config_text(frames) + "\n")
        cmd = [
            "ip", "netns", "exec", ns,
            "taskset", "-c", str(cpu),
            exe, "--dev", ifname, "--conf", str(conf), "--num", str(packets),
            "--cpus", "1", "--no-sock-mem", "--notouch-irq", "--no-cpu-stats",
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        try:
            yield proc
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stops trafgen's process group (ip netns exec and taskset exec into it; trafgen forks its
    worker), politely first."""
    for sig, wait in ((signal.SIGINT, 3.0), (signal.SIGKILL, 3.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
    if proc.stderr is not None:
        proc.stderr.close()


def error_text(proc: subprocess.Popen[bytes]) -> str:
    """The last line trafgen wrote to stderr (after it exited)."""
    if proc.stderr is None or proc.poll() is None:
        return ""
    lines = proc.stderr.read().decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"exit code {proc.returncode}"
