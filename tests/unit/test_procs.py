"""Process identity by pid and start time (shoal.procs), as the lab and the loader use it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import shoal
from shoal import procs
from shoal.lab.lab import Lab, LabSpec

SLEEP = [sys.executable, "-c", "import time; time.sleep(30)"]


def test_a_running_process_is_alive_only_with_its_own_start_time() -> None:
    child = subprocess.Popen(SLEEP)
    try:
        started = procs.start_time(child.pid)
        assert started is not None
        assert procs.alive(child.pid, started)
        assert procs.alive(child.pid)
        assert not procs.alive(child.pid, started + 1)  # a reused pid: another process
    finally:
        child.kill()
        child.wait()
    assert not procs.alive(child.pid, started)
    assert procs.start_time(child.pid) is None


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = procs.start_time(child.pid)
    deadline = time.monotonic() + 30
    while (fields := procs.stat_fields(child.pid)) and fields[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not procs.alive(child.pid, started)  # exited, not yet reaped
    child.wait()


def test_a_name_with_spaces_and_parentheses_does_not_shift_the_fields() -> None:
    script = "open('/proc/self/comm', 'w').write('a) b (c'); import time; time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while "a) b (c" not in Path(f"/proc/{child.pid}/stat").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        fields = procs.stat_fields(child.pid)
        assert fields is not None and fields[0] in "RS"
        assert int(fields[1]) == os.getpid()  # the parent pid, field 4
        assert procs.alive(child.pid, procs.start_time(child.pid))
    finally:
        child.kill()
        child.wait()


def test_a_process_stays_itself_through_its_execs(tmp_path: Path) -> None:
    """`ip netns exec` execs the command in the same pid: the command line is empty for a
    moment then, the start time never changes (the lab took a starting controller for gone)."""
    lab = Lab(LabSpec(root=tmp_path, prefix="procstest"))
    chain = ["sh", "-c", "exec sh -c 'exec sh -c \"exec sleep 30\"'"]
    lab.spawn("chain", chain, None)
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert lab.running("chain")
    finally:
        lab.stop("chain", wait=1)
    assert not lab.running("chain")


def test_cpu_seconds_of_a_gone_process_says_so() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(ProcessLookupError):
        procs.cpu_seconds(child.pid)


def test_the_lab_starts_its_daemons_on_its_own_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another `shoal` first on the path (as when the shared virtualenv's editable install
    moved to another checkout mid-run): a daemon the lab starts still imports the lab's."""
    elsewhere = tmp_path / "elsewhere" / "shoal"
    elsewhere.mkdir(parents=True)
    (elsewhere / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(elsewhere.parent))
    lab = Lab(LabSpec(root=tmp_path, prefix="codetest"))
    script = "import shoal; print(shoal.__file__, flush=True)"
    lab.spawn("which", [sys.executable, "-c", script], None)
    log = lab.dir / "logs" / "which.log"
    deadline = time.monotonic() + 30
    while not log.read_text().strip():
        assert time.monotonic() < deadline, "the daemon printed nothing"
        time.sleep(0.02)
    assert Path(log.read_text().strip()).resolve() == Path(shoal.__file__).resolve()
