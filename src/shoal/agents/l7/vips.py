"""The VIP addresses an L7 node answers for, on its loopback: packets the L4 tier
encapsulates to the node arrive (after decapsulation) with the VIP as destination, and
HAProxy binds to it. The addresses this agent added are remembered in a state file, so it
removes its own and never an operator's."""

from __future__ import annotations

import json
from pathlib import Path

from shoal import netns
from shoal.agents.files import private_dir, write_private

__all__ = ["VipAddresses"]


def _prefix(address: str) -> str:
    return f"{address}/128" if ":" in address else f"{address}/32"


class VipAddresses:
    def __init__(self, state_file: Path, device: str = "lo") -> None:
        self.state_file = state_file
        self.device = device

    def _ours(self) -> set[str]:
        try:
            return set(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return set()

    def _save(self, addresses: set[str]) -> None:
        private_dir(self.state_file.parent)
        write_private(self.state_file, json.dumps(sorted(addresses)))

    def present(self) -> set[str]:
        out = netns.run(["ip", "-o", "addr", "show", "dev", self.device]).stdout
        return {line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3}

    def ensure(self, wanted: set[str]) -> None:
        """Adds the wanted addresses first (HAProxy is about to bind them)."""
        have = self.present()
        ours = self._ours()
        for address in sorted(wanted - have):
            cmd = ["ip", "addr", "add", _prefix(address), "dev", self.device]
            netns.run([*cmd, "nodad"] if ":" in address else cmd)
            ours.add(address)
        self._save(ours | (wanted & have & ours))

    def prune(self, wanted: set[str]) -> None:
        """Removes the addresses this agent added that are no longer wanted (after HAProxy
        stopped listening on them)."""
        ours = self._ours()
        have = self.present()
        for address in sorted((ours - wanted) & have):
            netns.run(["ip", "addr", "del", _prefix(address), "dev", self.device], check=False)
        self._save(ours & wanted)
