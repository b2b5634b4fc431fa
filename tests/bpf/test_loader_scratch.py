"""Objects loaded without a pin dir pin into a scratch dir of bpffs for the load alone: it
must not outlive the load, whether the load succeeds, fails, or its process was killed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shoal.dataplane import loader
from shoal.errors import DataplaneError

pytestmark = pytest.mark.bpf


def own_scratch() -> set[str]:
    prefix = f"{loader.SCRATCH_PREFIX}{os.getpid()}_"
    return {p.name for p in loader.BPFFS.glob(f"{prefix}*")}


def test_a_load_leaves_no_scratch_dir():
    before = own_scratch()
    with loader.BpfObject(loader.bpf_object_path("trivial"), None) as obj:
        assert obj.prog_fd("shoal_trivial") > 0
    assert own_scratch() == before


def test_an_object_that_does_not_open_leaves_no_scratch_dir(tmp_path):
    junk = tmp_path / "junk.bpf.o"
    junk.write_bytes(b"not an ELF object at all")
    before = own_scratch()
    with pytest.raises(DataplaneError, match="bpf_object__open_file"):
        loader.BpfObject(junk, None)
    assert own_scratch() == before


def test_the_scratch_dir_of_a_killed_process_is_removed_by_the_next_load():
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)  # exited: nothing runs under this pid (reuse within ms is unlikely)
    stale = loader.BPFFS / f"{loader.SCRATCH_PREFIX}{pid}_3"
    mine = loader.BPFFS / f"{loader.SCRATCH_PREFIX}{os.getpid()}_999999"
    stale.mkdir()
    mine.mkdir()  # a live process's dir (this one's) is left alone
    try:
        with loader.BpfObject(loader.bpf_object_path("trivial"), None):
            pass
        assert not stale.exists() and mine.exists()
    finally:
        for path in (stale, mine):
            if path.exists():
                path.rmdir()
