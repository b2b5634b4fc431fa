"""BGP and BFD session state as the node's BIRD reports it (`birdc show protocols all`,
`birdc show bfd sessions`), for the agent's metrics and its report to the controller.
Read-only: the operator's bird.conf owns the sessions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from shoal.agents.bgp import SpeakerError, birdc
from shoal.errors import ShoalError
from shoal.wire.report import MAX_PEERS, BgpPeer, RoutingState

__all__ = [
    "BfdSession",
    "BgpSession",
    "BirdState",
    "parse_bfd",
    "parse_protocols",
    "peers",
    "routing_state",
]


@dataclass(frozen=True)
class BgpSession:
    name: str  # the protocol's name in bird.conf
    state: str  # BIRD's protocol state: up, start, down, ...
    info: str  # Established, Active, Connect, Idle, ... (BGP's own state)
    since: str = ""
    neighbor: str = ""  # from `show protocols all`; "" from the short form

    @property
    def established(self) -> bool:
        return self.state == "up" and self.bgp_state == "Established"

    @property
    def bgp_state(self) -> str:
        return self.info.split(" ")[0] if self.info else self.state


@dataclass(frozen=True)
class BfdSession:
    protocol: str
    neighbor: str
    interface: str
    state: str  # Up, Down, Init, AdminDown
    since: str = ""

    @property
    def up(self) -> bool:
        return self.state == "Up"


def parse_protocols(text: str) -> list[BgpSession]:
    """The BGP rows of `show protocols` (Name Proto Table State Since Info) and, from the
    long form (`show protocols all`), each one's indented "Neighbor address:" line."""
    out: list[BgpSession] = []
    current: BgpSession | None = None
    for line in text.splitlines():
        if line[:1].isspace():  # a detail line of the protocol above
            key, _, value = line.strip().partition(":")
            if current is not None and key == "Neighbor address" and not current.neighbor:
                current = BgpSession(
                    current.name, current.state, current.info, current.since, value.strip()
                )
                out[-1] = current
            continue
        parts = line.split(None, 5)
        current = None
        if len(parts) >= 5 and parts[1] == "BGP":
            info = parts[5].strip() if len(parts) > 5 else ""
            current = BgpSession(parts[0], parts[3], info, parts[4])
            out.append(current)
    return out


def parse_bfd(text: str) -> list[BfdSession]:
    """`show bfd sessions`: a "<protocol>:" line, a header, then one row per neighbour."""
    out: list[BfdSession] = []
    protocol = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith(":") and " " not in stripped:
            protocol = stripped[:-1]
            continue
        parts = stripped.split()
        if len(parts) >= 3 and parts[0] not in ("IP", "BIRD") and protocol:
            since = parts[3] if len(parts) > 3 else ""
            out.append(BfdSession(protocol, parts[0], parts[1], parts[2], since))
    return out


def peers(bgp: list[BgpSession], bfd: list[BfdSession]) -> list[BgpPeer]:
    """One row per BGP session, joined with the BFD session to its neighbour (if any)."""
    by_neighbor = {b.neighbor: b for b in bfd}
    out = []
    for s in bgp[:MAX_PEERS]:
        b = by_neighbor.get(s.neighbor) if s.neighbor else None
        out.append(
            BgpPeer(
                name=s.name[:64],
                neighbor=s.neighbor[:64],
                bgp_state=s.bgp_state[:32],
                bgp_since=s.since[:32],
                bfd_state=b.state[:16] if b else "",
                bfd_since=b.since[:32] if b else "",
            )
        )
    return out


def routing_state(bird: BirdState | None, announced: int) -> RoutingState:
    """What the agent reports: never raises (a BIRD that cannot be asked is "unknown")."""
    at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if bird is None:
        return RoutingState(bird="none", announced=announced, at=at)
    try:
        rows = peers(bird.bgp(), bird.bfd())
    except ShoalError as exc:
        line = str(exc).splitlines()[0] if str(exc) else "no answer"
        return RoutingState(bird="unknown", error=line[:200], announced=announced, at=at)
    return RoutingState(bird="ok", peers=rows, announced=announced, at=at)


@dataclass
class BirdState:
    """Asks BIRD at scrape time (two short birdc calls)."""

    socket: Path
    binary: str = "birdc"
    netns: str | None = None

    def bgp(self) -> list[BgpSession]:
        return parse_protocols(self._ask("show", "protocols", "all"))

    def bfd(self) -> list[BfdSession]:
        code, out = birdc(
            self.socket, "show", "bfd", "sessions", binary=self.binary, netns=self.netns
        )
        if code != 0 and "no BFD protocol" in out:
            return []  # a node without BFD
        if code != 0:
            raise SpeakerError(f"birdc show bfd sessions: {out.splitlines()[-1] if out else code}")
        return parse_bfd(out)

    def _ask(self, *args: str) -> str:
        code, out = birdc(self.socket, *args, binary=self.binary, netns=self.netns)
        if code != 0:
            raise SpeakerError(f"birdc {' '.join(args)}: {out.splitlines()[-1] if out else code}")
        return out
