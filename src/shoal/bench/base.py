"""The base a change is judged against: which commit it is, and that commit built in a
temporary directory so its own benchmarks can run next to the change's.

The base is, in this order: the commit asked for (`--base`, or SHOAL_BENCH_BASE); the
merge base with the branch's upstream, or with origin/main, when the change is not on it
yet (a developer's branch); the reference commit recorded in bench/baseline.json (a clean
CI clone, where HEAD is origin/main). None of these: no base, and the gate falls back to
the committed baseline of this machine."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shoal.bench.machine import SOURCE_ROOT
from shoal.errors import ShoalError

__all__ = [
    "PERFORMANCE_PATHS",
    "BaseChoice",
    "built_tree",
    "changed_since",
    "choose_base",
    "git",
]

# What can change a benchmark's figures; a change that touches none of these (docs, tests,
# the baseline file) has nothing to measure.
PERFORMANCE_PATHS = ("src", "bpf", "setup.py", "pyproject.toml", "Makefile")
BUILD_TIMEOUT = 300


@dataclass(frozen=True)
class BaseChoice:
    commit: str
    why: str  # one line for the gate's header


def git(*args: str, root: Path = SOURCE_ROOT, check: bool = True) -> str:
    """Output of a git command in root (stripped); ShoalError when it fails and check."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ShoalError(f"git {' '.join(args)}: {exc}") from None
    if done.returncode != 0 and check:
        raise ShoalError(f"git {' '.join(args)}: {done.stderr.strip() or 'failed'}")
    return done.stdout.strip() if done.returncode == 0 else ""


def _commit(ref: str, root: Path) -> str | None:
    found = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", root=root, check=False)
    return found or None


def _is_ancestor(commit: str, of: str, root: Path) -> bool:
    args = ["git", "-C", str(root), "merge-base", "--is-ancestor", commit, of]
    return subprocess.run(args, capture_output=True, timeout=60).returncode == 0


def choose_base(
    explicit: str | None, reference: str | None, root: Path = SOURCE_ROOT
) -> BaseChoice | None:
    """The commit to measure the working tree against (see the module's docstring)."""
    if not _commit("HEAD", root):
        return None  # not a git checkout, or no commit yet
    asked = explicit or os.environ.get("SHOAL_BENCH_BASE")
    if asked:
        commit = _commit(asked, root)
        if commit is None:
            raise ShoalError(f"base {asked!r} is not a commit of this repository")
        return BaseChoice(commit, f"{asked} (asked for)")
    head = _commit("HEAD", root) or ""
    for upstream in ("@{upstream}", "origin/main"):
        up = _commit(upstream, root)
        if up is None:
            continue
        fork = git("merge-base", "HEAD", up, root=root, check=False)
        if fork and fork != head:
            return BaseChoice(fork, f"where HEAD left {upstream}")
    if reference:
        if _commit(reference, root) is None:
            raise ShoalError(
                f"bench/baseline.json names reference commit {reference[:12]}, which this "
                "clone does not have (a shallow clone?): fetch the history or pass --base"
            )
        if _is_ancestor(reference, head, root):
            return BaseChoice(reference, "the reference commit of bench/baseline.json")
    return None


def changed_since(commit: str, root: Path = SOURCE_ROOT) -> list[str]:
    """Files under PERFORMANCE_PATHS that differ between commit and the working tree,
    untracked ones included."""
    diff = git("diff", "--name-only", commit, "--", *PERFORMANCE_PATHS, root=root)
    untracked = git(
        "ls-files", "--others", "--exclude-standard", "--", *PERFORMANCE_PATHS, root=root
    )
    return sorted({line for line in (diff + "\n" + untracked).splitlines() if line})


def _run(cmd: list[str], cwd: Path, log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(
            cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT
        )
    if done.returncode != 0:
        # The log goes with the temporary tree: its last words make the one-line error.
        last = [line.strip() for line in log.read_text().splitlines() if line.strip()]
        raise ShoalError(
            f"building the base failed at `{' '.join(cmd[-3:])}`: {last[-1] if last else '?'}"
        )


@contextlib.contextmanager
def built_tree(commit: str, root: Path = SOURCE_ROOT) -> Iterator[Path]:
    """The commit's files in a temporary directory with its BPF objects and its C extension
    built by its own Makefile and setup.py; removed afterwards. Its Python code runs from
    <dir>/src with this interpreter (PYTHONPATH), so the dependencies are this venv's."""
    tmp = Path(tempfile.mkdtemp(prefix=f"shoal-base-{commit[:10]}-"))
    try:
        archive = tmp / "tree.tar"
        git("archive", "--format=tar", f"--output={archive}", commit, root=root)
        tree = tmp / "tree"
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        archive.unlink()
        log = tmp / "build.log"
        # Only the BPF objects of the base's own Makefile: its `build` target would also
        # install packages and a venv, which the running one already has.
        objects = subprocess.run(
            ["make", "-s", "-C", str(tree), "--eval", "print-bpf-progs: ; @echo $(BPF_PROGS)",
             "print-bpf-progs"],
            capture_output=True, text=True, timeout=60,
        ).stdout.split()  # fmt: skip
        if not objects:
            raise ShoalError(f"the base's Makefile names no BPF objects (see {log})")
        _run(["make", "-s", "-C", str(tree), *objects], tree, log)
        _run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], tree, log)
        yield tree
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
