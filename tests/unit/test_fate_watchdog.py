"""The fate watchdog's decisions without BIRD: the BFD hold-down (issue 12, item 5), the gate
file, and the parser of `birdc show bfd sessions`."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.agents.fate import BirdGate, FateWatchdog, bfd_sessions_up
from shoal.errors import ShoalError

SHOW_UP = """BIRD 2.0.12 ready.
bfd1:
IP address                Interface  State      Since         Interval  Timeout
10.88.1.1                 up0        Up         12:31:02.114    0.100    0.300
fe80::1                   up0        Up         12:31:02.114    0.100    0.300
"""


def test_bfd_sessions_up_needs_every_session_up_and_at_least_one() -> None:
    assert bfd_sessions_up(SHOW_UP)
    assert not bfd_sessions_up(SHOW_UP.replace("Up   ", "Init ", 1))
    assert not bfd_sessions_up(SHOW_UP.replace("Up   ", "Down ", 1))
    assert not bfd_sessions_up("BIRD 2.0.12 ready.\nbfd1:\nIP address Interface State\n")
    assert not bfd_sessions_up("")


class Gate:
    def __init__(self) -> None:
        self.sets: list[bool] = []

    def set(self, withdrawn: bool) -> None:
        self.sets.append(withdrawn)


def dog(forwards: list[bool], peer: list[bool], hold: float = 2.0) -> tuple[FateWatchdog, Gate]:
    gate = Gate()
    watchdog = FateWatchdog(
        probe=lambda: forwards[0],
        gate=gate,  # type: ignore[arg-type]
        peer_up=lambda: peer[0],
        hold_down=hold,
    )
    return watchdog, gate


def test_bfd_down_withdraws_at_once_and_comes_back_only_after_the_hold_down() -> None:
    forwards, peer = [True], [True]
    watchdog, gate = dog(forwards, peer)
    assert watchdog.step(0.0) is None  # Up when it starts: no hold-down, nothing to do
    peer[0] = False
    assert watchdog.step(0.1) == "withdraw" and gate.sets == [True]
    peer[0] = True
    assert watchdog.step(0.2) is None
    assert watchdog.step(2.1) is None  # Up for 1.9 s only
    peer[0] = False  # stale ids: BFD drops again inside the hold-down
    assert watchdog.step(2.2) is None
    peer[0] = True
    assert watchdog.step(2.3) is None
    assert watchdog.step(4.2) is None
    assert watchdog.step(4.3) == "restore" and gate.sets == [True, False]
    assert not watchdog.withdrawn


def test_data_plane_failure_still_needs_its_grace_and_gate_is_not_repeated() -> None:
    forwards, peer = [True], [True]
    watchdog, gate = dog(forwards, peer)
    forwards[0] = False
    assert watchdog.step(0.0) is None
    assert watchdog.step(0.29) is None
    assert watchdog.step(0.3) == "withdraw"
    for t in range(1, 6):  # the gate is configuration: no re-disable every second
        assert watchdog.step(0.3 + t) is None
    assert gate.sets == [True]
    forwards[0] = True
    assert watchdog.step(6.0) == "restore"


def test_an_agent_that_dies_while_xdp_forwards_changes_nothing() -> None:
    watchdog, gate = dog([True], [True])
    assert all(watchdog.step(t / 10) is None for t in range(50))
    assert gate.sets == []


def test_a_failed_gate_write_is_retried(tmp_path: Path) -> None:
    calls: list[str] = []

    def configure() -> None:
        calls.append((tmp_path / "fate.conf").read_text())
        if len(calls) == 1:
            raise ShoalError("BIRD busy")

    watchdog = FateWatchdog(probe=lambda: False, gate=BirdGate(tmp_path / "fate.conf", configure))
    watchdog.step(0.0)
    assert watchdog.step(0.3) == "withdraw"
    watchdog.step(1.4)
    assert len(calls) == 2 and calls[-1].startswith("disabled yes;")


def test_without_gate_or_bird_the_watchdog_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="needs bird"):
        FateWatchdog(probe=lambda: False)
