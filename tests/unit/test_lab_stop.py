"""Lab.stop(): a process that outlives its SIGTERM grace is killed, so a restarted controller
never finds its port still held by the old one; a freeze (SIGSTOP) is never escalated."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from shoal.lab.lab import Lab, LabSpec

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"


def lab(tmp_path: Path) -> Lab:
    return Lab(LabSpec(root=tmp_path, prefix="stoptest"))


def test_a_process_that_ignores_sigterm_is_killed_after_its_grace(tmp_path: Path) -> None:
    made = lab(tmp_path)
    made.spawn("stubborn", [sys.executable, "-c", STUBBORN, "stubborn-marker"], None)
    assert made.running("stubborn")
    made.stop("stubborn", wait=0.3)
    assert not made.running("stubborn")


def test_a_freeze_is_not_escalated(tmp_path: Path) -> None:
    made = lab(tmp_path)
    made.spawn("frozen", [sys.executable, "-c", STUBBORN, "frozen-marker"], None)
    try:
        made.stop("frozen", signal.SIGSTOP, wait=0)
        assert made.running("frozen")
    finally:
        made.stop("frozen", signal.SIGKILL)
    assert not made.running("frozen")
