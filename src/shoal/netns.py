"""Network namespaces and links, through iproute2 and setns(2).

Commands run inside a namespace with `ip netns exec`; Python work that needs a namespace (netlink
attach of an XDP program, ifindex lookups) enters it on the calling thread only, with setns."""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from shoal.errors import ConfigError, NetnsError

__all__ = ["add", "delete", "entered", "exists", "ifindex", "run"]

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def run(
    cmd: Sequence[str],
    netns: str | None = None,
    *,
    check: bool = True,
    timeout: float = 30,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs a command (inside netns if given); a failure raises NetnsError with stderr's line."""
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    proc = subprocess.run(
        full, capture_output=True, text=True, timeout=timeout, check=False, input=input_text
    )
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise NetnsError(f"`{' '.join(full)}` failed: {msg[-1] if msg else proc.returncode}")
    return proc


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def add(name: str) -> None:
    run(["ip", "netns", "add", name])
    run(["ip", "link", "set", "lo", "up"], name)


def delete(name: str) -> None:
    if exists(name):
        run(["ip", "netns", "delete", name], check=False)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def entered(name: str | None) -> Iterator[None]:
    """Runs the block with this thread inside network namespace `name` (None: stay)."""
    if name is None:
        yield
        return
    path = NETNS_DIR / name
    if not path.exists():
        raise ConfigError(f"network namespace {name!r} does not exist")
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def ifindex(ifname: str, netns: str | None = None) -> int:
    """The interface's index; an unknown interface is a ConfigError naming it."""
    with entered(netns):
        try:
            return socket.if_nametoindex(ifname)
        except OSError:
            where = f" in network namespace {netns!r}" if netns else ""
            raise ConfigError(f"unknown interface {ifname!r}{where}") from None
