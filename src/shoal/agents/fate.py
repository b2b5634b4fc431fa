"""Fate sharing: a node announces its VIPs only while its data plane forwards.

A watchdog that runs beside BIRD, not inside the agent: the agent can die while XDP keeps
forwarding (the node must then stay in ECMP), and the data plane can die while the agent
lives on or is gone too (the node must leave at once). Every `interval` it checks, in the
node's network namespace, that the uplink is up and running (SIOCGIFFLAGS) and has an XDP
program attached; after `grace` of failure (room for a live agent's re-attach, which keeps the
routes) it disables BIRD's VIP protocols, withdrawing every route they export, and enables them
again once the data plane forwards. While withdrawn it repeats the disable each second, so a
`birdc configure` from the agent meanwhile cannot bring the routes back.

With a gate file (`BirdGate`, what the lab runs) the VIP protocols include a file that says
`disabled yes;` or `disabled no;`: the withdrawal is then part of BIRD's configuration, and the
agent's own `configure` keeps it instead of undoing it.

Hold-down (issue 12, item 5): with `peer_up` (every BFD session of the node Up), the VIPs are
also withdrawn while BFD is not Up, and announced again only after it has been Up for
`hold_down` seconds. A node that resumes from a freeze first re-peers with stale BFD session
ids ("mismatched remote id" / "unknown session id"); the BGP session it brings up meanwhile is
torn down again seconds later. Announcing only after the hold-down makes it rejoin ECMP once."""

from __future__ import annotations

import ctypes
import fcntl
import ipaddress
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shoal import netns
from shoal.dataplane import loader
from shoal.errors import ShoalError

__all__ = ["BirdGate", "FateWatchdog", "bfd_sessions_up", "data_plane_forwards"]

log = logging.getLogger("shoal.fate")
SIOCGIFFLAGS = 0x8913
IFF_UP, IFF_RUNNING = 0x1, 0x40


class _IfReq(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char * 16),
        ("flags", ctypes.c_short),
        ("pad", ctypes.c_char * 22),
    ]


def _link_running(ifname: str) -> bool:
    req = _IfReq(name=ifname.encode())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req)
        except OSError:
            return False  # the interface is gone
    return bool(req.flags & IFF_UP and req.flags & IFF_RUNNING)


def data_plane_forwards(ifname: str, netns_name: str | None = None) -> bool:
    """The uplink is up with carrier and an XDP program is attached to it."""
    try:
        with netns.entered(netns_name):
            if not _link_running(ifname):
                return False
            return loader.xdp_prog_id(socket.if_nametoindex(ifname)) != 0
    except (OSError, ShoalError):
        return False


def bfd_sessions_up(show_bfd_sessions: str) -> bool:
    """`birdc show bfd sessions` lists at least one session and every one is Up."""
    states = []
    for line in show_bfd_sessions.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            ipaddress.ip_address(parts[0])
        except ValueError:
            continue  # the protocol's name, the header
        states.append(parts[2])
    return bool(states) and all(state == "Up" for state in states)


@dataclass
class BirdGate:
    """Withdraws by configuration: writes `disabled yes;` (or `no`) to the file the VIP
    protocols include, then asks BIRD to reconfigure (configure(): raises ShoalError)."""

    path: Path
    configure: Callable[[], None]

    def set(self, withdrawn: bool) -> None:
        text = f"disabled {'yes' if withdrawn else 'no'};  # managed by shoal agent fate\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)
        self.configure()


@dataclass
class FateWatchdog:
    """probe() says whether the data plane forwards; bird(command, protocol) runs a birdc
    command ("disable"/"enable"), unless a gate is given (then gate.set() alone acts).
    peer_up(), when given, says whether the node's BFD sessions are Up (hold-down)."""

    probe: Callable[[], bool]
    bird: Callable[[str, str], None] | None = None
    protocols: Sequence[str] = ("shoal_vips4", "shoal_vips6")
    grace: float = 0.3
    interval: float = 0.1
    reassert: float = 1.0
    gate: BirdGate | None = None
    peer_up: Callable[[], bool] | None = None
    hold_down: float = 0.0
    withdrawn: bool = False
    _bad_since: float | None = None
    _last_disable: float = 0.0
    _peer_up_since: float | None = -1e18  # Up when the watchdog starts: no hold-down then
    _send_failed: bool = False

    def __post_init__(self) -> None:
        if self.bird is None and self.gate is None:
            raise ValueError("FateWatchdog needs bird (disable/enable) or a gate")

    def _peer_settled(self, now: float) -> bool:
        if self.peer_up is None:
            return True
        if not self.peer_up():
            self._peer_up_since = None
            return False
        if self._peer_up_since is None:
            self._peer_up_since = now
        return now - self._peer_up_since >= self.hold_down

    def step(self, now: float) -> str | None:
        """One check; returns "withdraw" or "restore" when it acted."""
        forwards = self.probe()
        settled = self._peer_settled(now)
        if forwards:
            self._bad_since = None
        elif self._bad_since is None:
            self._bad_since = now
        if forwards and settled:
            if self.withdrawn:
                self._send("enable")
                self.withdrawn = False
                log.warning("data plane forwards and BFD is settled: VIP routes restored")
                return "restore"
            return None
        # BFD not Up: the router has dropped this node already, withdrawing costs nothing.
        failed = not settled or (
            self._bad_since is not None and now - self._bad_since >= self.grace
        )
        if not self.withdrawn and failed:
            self._send("disable")
            self.withdrawn, self._last_disable = True, now
            why = "BFD not Up for the hold-down" if forwards else "XDP detached or link down"
            log.error("VIPs withdrawn: %s", why)
            return "withdraw"
        repeat = self.gate is None or self._send_failed
        if self.withdrawn and repeat and now - self._last_disable >= self.reassert:
            self._send("disable")
            self._last_disable = now
        return None

    def _send(self, command: str) -> None:
        self._send_failed = False
        if self.gate is not None:
            try:
                self.gate.set(command == "disable")
            except (OSError, ShoalError) as exc:
                self._send_failed = True
                log.error("fate gate %s: %s", command, exc)
            return
        assert self.bird is not None  # __post_init__
        for proto in self.protocols:
            try:
                self.bird(command, proto)
            except ShoalError as exc:
                log.error("birdc %s %s: %s", command, proto, exc)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step(time.monotonic())
            stop.wait(self.interval)
