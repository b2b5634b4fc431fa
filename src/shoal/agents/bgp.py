"""Announcing VIPs over BGP through the node's BIRD. The operator's bird.conf owns the
sessions (neighbours, BFD, policies); the agent owns two include files of static routes, one
per address family, and asks BIRD to reload when they change:

    protocol static shoal_vips4 { ipv4; include "/run/shoal/<node>/vips4.conf"; }
    protocol static shoal_vips6 { ipv6; include "/run/shoal/<node>/vips6.conf"; }
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from shoal.errors import ShoalError

__all__ = ["BirdSpeaker", "NullSpeaker", "Speaker", "SpeakerError", "birdc"]


class SpeakerError(ShoalError):
    pass


class Speaker(Protocol):
    announced: frozenset[str]

    def announce(self, vips: Iterable[str]) -> bool: ...


class NullSpeaker:
    """No BGP (a node behind a static route, or tests)."""

    def __init__(self) -> None:
        self.announced: frozenset[str] = frozenset()

    def announce(self, vips: Iterable[str]) -> bool:
        new = frozenset(vips)
        changed = new != self.announced
        self.announced = new
        return changed


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def render(vips: Iterable[str], family: int) -> str:
    lines = ["# Managed by the Shoal L4 agent: the VIPs this node announces."]
    for vip in sorted(vips, key=lambda v: ipaddress.ip_address(v)):
        ip = ipaddress.ip_address(vip)
        if ip.version == family:
            lines.append(f"route {ip}/{32 if family == 4 else 128} blackhole;")
    return "\n".join(lines) + "\n"


class BirdSpeaker:
    def __init__(
        self,
        include_dir: Path,
        control_socket: Path,
        birdc: str = "birdc",
        netns: str | None = None,
    ) -> None:
        self.include_dir = include_dir
        self.socket = control_socket
        self.birdc = birdc
        self.netns = netns
        self.announced: frozenset[str] = frozenset()
        for family in (4, 6):  # BIRD must find the files before the first announcement
            path = include_dir / f"vips{family}.conf"
            if not path.exists():
                _write_atomic(path, render([], family))

    def announce(self, vips: Iterable[str]) -> bool:
        """Makes the announced set exactly vips; True when it changed."""
        new = frozenset(str(ipaddress.ip_address(v)) for v in vips)
        if new == self.announced:
            return False
        for family in (4, 6):
            _write_atomic(self.include_dir / f"vips{family}.conf", render(new, family))
        self._configure()
        self.announced = new
        return True

    def _configure(self) -> None:
        code, out = birdc(self.socket, "configure", binary=self.birdc, netns=self.netns)
        if code != 0 or ("Reconfigured" not in out and "in progress" not in out):
            raise SpeakerError(f"BIRD refused the VIP list: {out.splitlines()[-1] if out else ''}")


def birdc(
    control_socket: Path, *args: str, binary: str = "birdc", netns: str | None = None
) -> tuple[int, str]:
    """Runs one birdc command; (exit code, output). SpeakerError if birdc cannot run."""
    cmd = [binary, "-s", str(control_socket), *args]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpeakerError(f"birdc {' '.join(args)} failed: {exc}") from None
    return proc.returncode, (proc.stdout + proc.stderr).strip()
