"""Fate sharing: a node announces its VIPs only while its data plane forwards.

A watchdog that runs beside BIRD, not inside the agent: the agent can die while XDP keeps
forwarding (the node must then stay in ECMP), and the data plane can die while the agent
lives on or is gone too (the node must leave at once). Every `interval` it checks, in the
node's network namespace, that the uplink is up and running (SIOCGIFFLAGS) and has an XDP
program attached; after `grace` of failure (room for a live agent's re-attach, which keeps the
routes) it disables BIRD's VIP protocols, withdrawing every route they export, and enables them
again once the data plane forwards. While withdrawn it repeats the disable each second, so a
`birdc configure` from the agent meanwhile cannot bring the routes back."""

from __future__ import annotations

import ctypes
import fcntl
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shoal import netns
from shoal.dataplane import loader
from shoal.errors import ShoalError

__all__ = ["FateWatchdog", "data_plane_forwards"]

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


@dataclass
class FateWatchdog:
    """probe() says whether the data plane forwards; bird(command, protocol) runs a birdc
    command ("disable"/"enable")."""

    probe: Callable[[], bool]
    bird: Callable[[str, str], None]
    protocols: Sequence[str] = ("shoal_vips4", "shoal_vips6")
    grace: float = 0.3
    interval: float = 0.1
    reassert: float = 1.0
    withdrawn: bool = False
    _bad_since: float | None = None
    _last_disable: float = 0.0

    def step(self, now: float) -> str | None:
        """One check; returns "withdraw" or "restore" when it acted."""
        if self.probe():
            self._bad_since = None
            if self.withdrawn:
                self._send("enable")
                self.withdrawn = False
                log.warning("data plane forwards again: VIP routes restored")
                return "restore"
            return None
        if self._bad_since is None:
            self._bad_since = now
        if not self.withdrawn and now - self._bad_since >= self.grace:
            self._send("disable")
            self.withdrawn, self._last_disable = True, now
            log.error("data plane does not forward (XDP detached or link down): VIPs withdrawn")
            return "withdraw"
        if self.withdrawn and now - self._last_disable >= self.reassert:
            self._send("disable")
            self._last_disable = now
        return None

    def _send(self, command: str) -> None:
        for proto in self.protocols:
            try:
                self.bird(command, proto)
            except ShoalError as exc:
                log.error("birdc %s %s: %s", command, proto, exc)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step(time.monotonic())
            stop.wait(self.interval)
