"""BGP and BFD session state as the node's BIRD reports it (`birdc show protocols`,
`birdc show bfd sessions`), for the agent's metrics. Read-only: the operator's bird.conf
owns the sessions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shoal.agents.bgp import SpeakerError, birdc

__all__ = ["BfdSession", "BgpSession", "BirdState", "parse_bfd", "parse_protocols"]


@dataclass(frozen=True)
class BgpSession:
    name: str  # the protocol's name in bird.conf
    state: str  # BIRD's protocol state: up, start, down, ...
    info: str  # Established, Active, Connect, Idle, ... (BGP's own state)

    @property
    def established(self) -> bool:
        return self.state == "up" and self.info.split(" ")[0] == "Established"


@dataclass(frozen=True)
class BfdSession:
    protocol: str
    neighbor: str
    interface: str
    state: str  # Up, Down, Init, AdminDown

    @property
    def up(self) -> bool:
        return self.state == "Up"


def parse_protocols(text: str) -> list[BgpSession]:
    """The BGP rows of `show protocols`: Name Proto Table State Since Info."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) >= 5 and parts[1] == "BGP":
            info = parts[5].strip() if len(parts) > 5 else ""
            out.append(BgpSession(parts[0], parts[3], info))
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
            out.append(BfdSession(protocol, parts[0], parts[1], parts[2]))
    return out


@dataclass
class BirdState:
    """Asks BIRD at scrape time (two short birdc calls)."""

    socket: Path
    binary: str = "birdc"
    netns: str | None = None

    def bgp(self) -> list[BgpSession]:
        return parse_protocols(self._ask("show", "protocols"))

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
