"""Processes by identity: a pid is only the process we mean while its start time matches.

A command line is a poor identity: it is empty for a moment while a process execs (the lab
starts everything through `ip netns exec`), and a daemon may rewrite it. The start time
(clock ticks after boot, /proc/<pid>/stat field 22) is fixed for the life of a process and
differs for a reused pid."""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3, the state, first),
    or None when there is no such process. The name may hold spaces and parentheses."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def alive(pid: int, started: int | None = None) -> bool:
    """The process exists, has not exited (a zombie has) and, when `started` is given, is
    the one that started then and not a later one that reuses its pid."""
    fields = stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (its threads included)."""
    fields = stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK
