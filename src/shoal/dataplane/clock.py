"""The data plane's clock: jiffies. bpf_jiffies64() costs about 4 ns per call on these machines
against about 35 ns for bpf_ktime_get_coarse_ns(), so every time the XDP program keeps (flood
windows, UDP session age, next-hop age) is in jiffies. Python converts durations with the
kernel's HZ and reads the current jiffies to report state between packets."""

from __future__ import annotations

import functools
import gzip
import os
import re
import time
from pathlib import Path

from shoal.errors import DataplaneError

__all__ = ["hz", "jiffies_now", "to_jiffies"]

_KNOWN_HZ = (100, 250, 300, 1000)


def _config_hz() -> int | None:
    for path in (Path("/proc/config.gz"), Path(f"/boot/config-{os.uname().release}")):
        try:
            raw = path.read_bytes()
            if path.suffix == ".gz":
                raw = gzip.decompress(raw)
        except OSError:
            continue
        m = re.search(rb"^CONFIG_HZ=(\d+)$", raw, re.M)
        if m:
            return int(m.group(1))
    return None


# (monotonic seconds, jiffies) of the last read of /proc/timer_list: formatting it costs the
# kernel ~0.1 ms a read, which every report and flood check paid.
_read_at: tuple[float, int] | None = None
RESYNC_S = 1.0


def jiffies_now() -> int:
    """The kernel's jiffies_64, as bpf_jiffies64() returns it: read from /proc/timer_list at
    most once a second, counted on at HZ from the monotonic clock in between (at most one
    jiffy behind, never ahead)."""
    global _read_at
    now = time.monotonic()
    last = _read_at
    if last is not None and 0 <= now - last[0] < RESYNC_S:
        return last[1] + int((now - last[0]) * hz())
    jiffies = _read_jiffies()
    _read_at = (time.monotonic(), jiffies)  # stamped after the read: never ahead
    return jiffies


def _read_jiffies() -> int:
    try:
        with open("/proc/timer_list") as f:
            for line in f:
                if line.startswith("jiffies:"):
                    return int(line.split()[1])
    except OSError as exc:
        raise DataplaneError(f"cannot read /proc/timer_list: {exc.strerror}") from None
    raise DataplaneError("/proc/timer_list has no jiffies line")


@functools.cache
def hz() -> int:
    """CONFIG_HZ, from the kernel config or measured against the monotonic clock."""
    configured = _config_hz()
    if configured:
        return configured
    j0, t0 = _read_jiffies(), time.monotonic()
    time.sleep(0.25)
    rate = (_read_jiffies() - j0) / (time.monotonic() - t0)
    return min(_KNOWN_HZ, key=lambda k: abs(k - rate))


def to_jiffies(seconds: float) -> int:
    """A duration in whole jiffies, at least one."""
    return max(1, round(seconds * hz()))
