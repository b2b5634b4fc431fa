"""What a result was measured on: kernel, CPU model, cores, memory, and the commit (read from
the .git directory's files: the benchmark never runs git)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["describe", "git_commit", "key"]

SOURCE_ROOT = Path(__file__).resolve().parents[3]  # src/shoal/bench/machine.py -> checkout


def _first(path: str, prefix: str) -> str | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def describe() -> dict[str, object]:
    mem_kb = _first("/proc/meminfo", "MemTotal")
    return {
        "kernel": os.uname().release,
        "cpu_model": _first("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "memory_gb": round(int(mem_kb.split()[0]) / 2**20, 1) if mem_kb else None,
        "python": platform.python_version(),
    }


def key(desc: dict[str, object]) -> str:
    """What results are filed under: figures from one CPU model, core count or kernel say
    nothing about another's."""
    return f"{desc.get('cpu_model', 'unknown')} | {desc.get('cores', '?')} cores | " + str(
        desc.get("kernel", "?")
    )


def _git_dir(root: Path) -> Path | None:
    dot = root / ".git"
    if dot.is_dir():
        return dot
    if dot.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = dot.read_text().strip()
        if text.startswith("gitdir:"):
            target = Path(text.split(":", 1)[1].strip())
            return target if target.is_absolute() else (root / target).resolve()
    return None


def _resolve_ref(git_dir: Path, ref: str) -> str | None:
    common = git_dir
    if (git_dir / "commondir").exists():  # worktrees keep refs in the main repository
        common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
    for base in (git_dir, common):
        loose = base / ref
        if loose.is_file():
            return loose.read_text().strip()
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return None


def git_commit(root: Path | None = None) -> dict[str, str | None]:
    """{"commit", "ref"} of the checkout at root (default: this source tree's), or Nones."""
    for candidate in (root, SOURCE_ROOT, Path.cwd()):
        git_dir = _git_dir(candidate) if candidate else None
        if git_dir is None:
            continue
        try:
            head = (git_dir / "HEAD").read_text().strip()
            if head.startswith("ref:"):
                ref = head.split(":", 1)[1].strip()
                return {"commit": _resolve_ref(git_dir, ref), "ref": ref}
            return {"commit": head, "ref": None}  # detached HEAD
        except OSError:
            continue
    return {"commit": None, "ref": None}
