"""BPF_PROG_TEST_RUN: run an XDP program on one frame and get its verdict and output frame."""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass

from shoal.dataplane import libbpf as bpf

__all__ = ["TestRunResult", "XdpAction", "run_xdp"]


class XdpAction(enum.IntEnum):
    ABORTED = 0
    DROP = 1
    PASS = 2
    TX = 3
    REDIRECT = 4


class XdpMd(ctypes.Structure):
    """struct xdp_md as BPF_PROG_TEST_RUN accepts it for ctx_in."""

    _fields_ = [
        ("data", ctypes.c_uint32),
        ("data_end", ctypes.c_uint32),
        ("data_meta", ctypes.c_uint32),
        ("ingress_ifindex", ctypes.c_uint32),
        ("rx_queue_index", ctypes.c_uint32),
        ("egress_ifindex", ctypes.c_uint32),
    ]


@dataclass(frozen=True)
class TestRunResult:
    __test__ = False  # not a pytest class
    action_value: int  # the program's raw return value
    frame: bytes
    duration_ns: int

    @property
    def action(self) -> XdpAction:
        return XdpAction(self.action_value)


def run_prog(
    prog_fd: int,
    frame: bytes,
    *,
    ctx: ctypes.Structure | None = None,
    repeat: int = 1,
    headroom: int = 256,
) -> TestRunResult:
    """Runs any program type on one frame (or repeat times on the same buffer: see
    docs/performance.md for why benchmarks of rewriting programs must use repeat=1)."""
    out = ctypes.create_string_buffer(len(frame) + headroom)
    opts = bpf.opts(
        bpf.TestRunOpts,
        data_in=ctypes.cast(ctypes.c_char_p(frame), ctypes.c_void_p),
        data_size_in=len(frame),
        data_out=ctypes.cast(out, ctypes.c_void_p),
        data_size_out=len(out),
        repeat=repeat,
    )
    if ctx is not None:
        opts.ctx_in = ctypes.cast(ctypes.pointer(ctx), ctypes.c_void_p)
        opts.ctx_size_in = ctypes.sizeof(ctx)
    bpf.lib().call("bpf_prog_test_run_opts", prog_fd, ctypes.byref(opts))
    return TestRunResult(opts.retval, out.raw[: opts.data_size_out], opts.duration)


def run_xdp(
    prog_fd: int, frame: bytes, *, ingress_ifindex: int = 0, repeat: int = 1
) -> TestRunResult:
    """Runs an XDP program as if the frame arrived on ingress_ifindex (0: loopback)."""
    ctx = XdpMd(data=0, data_end=len(frame), ingress_ifindex=ingress_ifindex)
    return run_prog(prog_fd, frame, ctx=ctx if ingress_ifindex else None, repeat=repeat)
