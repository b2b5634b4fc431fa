"""Checks that this kernel can run Shoal's data plane: load an XDP program and run it once.
`make` runs it after building; it prints one line and exits 1 when something is missing."""

from __future__ import annotations

import sys

from shoal.dataplane import loader, packets
from shoal.dataplane.testrun import XdpAction, run_xdp
from shoal.errors import ShoalError


def check() -> str | None:
    """None when XDP works, else the reason in one line."""
    try:
        with loader.BpfObject(loader.bpf_object_path("trivial"), None) as obj:
            result = run_xdp(
                obj.prog_fd("shoal_trivial"), packets.tcp_frame("192.0.2.1", "192.0.2.2", 1, 2)
            )
            if result.action != XdpAction.PASS:
                return f"a trivial XDP program returned {result.action.name}, not PASS"
    except ShoalError as exc:
        return f"this kernel cannot load or run XDP programs: {str(exc).splitlines()[0]}"
    return None


def main() -> None:
    problem = check()
    if problem:
        print(f"shoal: {problem}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
