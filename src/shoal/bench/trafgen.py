"""Shoal's own traffic generator: minimum-size frames at millions of packets per second from
inside a network namespace, with BPF_PROG_TEST_RUN in live-frames mode.

`bpf/test/trafgen.bpf.c` holds the generator program (each copy of a template frame gets the
next flow's source address and port, then XDP_TX) and a sink (count by destination, drop).
The kernel sends what the generator returns with XDP_TX out of the interface named in the test
run's context; its veth peer must run an XDP program (the sink, or anything) or it drops them
(LAB-NOTES). Every send is bounded by a packet count and a duration: each test run sends one
chunk, and chunks are sized from the measured rate so that one sends for about 0.1 s."""

from __future__ import annotations

import ctypes
import errno
import functools
import ipaddress
import os
import time
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from shoal import netns
from shoal.dataplane import libbpf as bpf
from shoal.dataplane import loader, packets
from shoal.dataplane.maps import KernelMap
from shoal.dataplane.testrun import XdpMd
from shoal.errors import BpfError, DataplaneError

__all__ = ["MIN_FRAME", "FlowPattern", "SendResult", "Trafgen", "live_frames_refusal", "min_frame"]

BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
MIN_FRAME = 60  # a 64-byte Ethernet frame without its 4-byte FCS (veth carries none)
SINK_SLOTS = 257  # [0..255] by the destination's last byte, [256] not IPv4
CHUNK_SECONDS = 0.1  # of sending per test run; the time bound is checked between runs
FIRST_CHUNK = 8192
MAX_CHUNK = 1 << 20


def _own_namespace(ns: str) -> str:
    """Generated frames leave only inside a namespace a benchmark made: never in the host's,
    where XDP_TX would put them on a real interface."""
    if not ns:
        raise DataplaneError("the traffic generator runs only inside a network namespace")
    return ns


class _Config(ctypes.Structure):
    """struct trafgen_config (host byte order)."""

    _fields_ = [
        ("flows", ctypes.c_uint32),
        ("port_span", ctypes.c_uint32),
        ("saddr_base", ctypes.c_uint32),
        ("sport_base", ctypes.c_uint32),
        ("frame", ctypes.c_uint8 * MIN_FRAME),
    ]


@dataclass(frozen=True)
class FlowPattern:
    """Flow i of the cycle comes from sport_base + i % port_span, saddr + i // port_span."""

    flows: int = 1024
    port_span: int = 256
    saddr: str = "10.98.0.1"
    sport_base: int = 1024

    def __post_init__(self) -> None:
        if self.flows < 1 or not 1 <= self.port_span <= 65535 - self.sport_base:
            raise DataplaneError(f"bad flow pattern {self}")

    def flow(self, i: int) -> tuple[str, int]:
        """Source address and port of flow i, as the generator program makes them."""
        i %= self.flows
        addr = ipaddress.IPv4Address(self.saddr) + i // self.port_span
        return str(addr), self.sport_base + i % self.port_span


@dataclass(frozen=True)
class SendResult:
    packets: int  # frames the generator produced (handed to XDP_TX)
    seconds: float  # wall time of the whole send
    busy_seconds: float  # the kernel's own time of the test runs (see Trafgen.send)
    calls: int
    stopped_by: str  # "packets" or "seconds"

    @property
    def pps(self) -> float:
        return self.packets / self.busy_seconds if self.busy_seconds > 0 else 0.0


def min_frame(
    protocol: str,
    dst: str,
    dport: int,
    *,
    smac: bytes = packets.MAC_A,
    dmac: bytes = packets.MAC_B,
    src: str = "10.98.0.1",
    sport: int = 1024,
) -> bytes:
    """A 60-byte IPv4 UDP or TCP (ACK) frame with valid checksums; padding is payload."""
    if protocol == "udp":
        pad = b"\0" * (MIN_FRAME - 42)
        frame = packets.udp_frame(src, dst, sport, dport, pad, smac=smac, dmac=dmac)
    elif protocol == "tcp":
        pad = b"\0" * (MIN_FRAME - 54)
        frame = packets.tcp_frame(
            src, dst, sport, dport, packets.TCP_ACK, pad, smac=smac, dmac=dmac
        )
    else:
        raise DataplaneError(f"protocol {protocol!r}: use udp or tcp")
    assert len(frame) == MIN_FRAME
    return frame


@functools.cache
def live_frames_refusal() -> str | None:
    """Why this kernel refuses live-frames test runs, or None when it takes them.

    Some kernels built for sandboxes answer every live-frames run with EPERM (seen on a 6.18
    build whose other BPF_PROG_TEST_RUN modes work). The probe runs the sink (XDP_DROP) once
    in live mode without a context: on the calling namespace's loopback, and nothing leaves."""
    frame = min_frame("udp", "192.0.2.1", 9)
    with Trafgen() as tg:
        buf = ctypes.create_string_buffer(frame, len(frame))
        opts = bpf.opts(
            bpf.TestRunOpts,
            data_in=ctypes.cast(buf, ctypes.c_void_p),
            data_size_in=len(frame),
            flags=BPF_F_TEST_XDP_LIVE_FRAMES,
            repeat=1,
        )
        rc = tg._fn(tg.obj.prog_fd("shoal_trafgen_sink"), ctypes.byref(opts))
    if rc == 0:
        return None
    name = errno.errorcode.get(-rc, str(rc))  # libbpf returns -errno
    return f"this kernel ({os.uname().release}) refuses live-frames test runs ({name})"


class Trafgen:
    """The generator and sink programs (one BPF object, private maps)."""

    def __init__(self) -> None:
        self.obj = loader.BpfObject(loader.bpf_object_path("trafgen"), None)
        self._config = KernelMap(self.obj.map_fd("shoal_trafgen_config"))
        self._sent = KernelMap(self.obj.map_fd("shoal_trafgen_sent"), percpu=True)
        self._received = KernelMap(self.obj.map_fd("shoal_trafgen_received"), percpu=True)
        self._fn = bpf.lib().func("bpf_prog_test_run_opts")
        self.flows = FlowPattern()
        self.pattern(self.flows)

    def pattern(self, flows: FlowPattern) -> None:
        """Sets the flow cycle for the next sends (and restarts it)."""
        self.flows = flows
        self._sent.update(bytes(4), bytes(8 * bpf.lib().ncpus))  # per-CPU u64 zeros

    def set_frame(self, frame: bytes) -> None:
        """The template every generated frame starts from (send() sets it too)."""
        if len(frame) != MIN_FRAME:
            raise DataplaneError(f"the generator makes {MIN_FRAME}-byte frames, not {len(frame)}")
        f = self.flows
        cfg = _Config(
            f.flows,
            f.port_span,
            int(ipaddress.IPv4Address(f.saddr)),
            f.sport_base,
            (ctypes.c_uint8 * MIN_FRAME)(*frame),
        )
        self._config.update(bytes(4), bytes(cfg))

    def attach_sink(self, ifname: str, ns: str) -> None:
        """Counts and drops every frame arriving on ifname (native XDP) in namespace ns."""
        with netns.entered(_own_namespace(ns)):
            loader.attach_xdp(
                netns.ifindex(ifname), self.obj.prog_fd("shoal_trafgen_sink"), "native"
            )

    def received_by_slot(self) -> np.ndarray:
        """Frames the sink counted: 257 slots, by the IPv4 destination's last byte (+ other)."""
        raw = np.frombuffer(self._received.lookup_all_array(), dtype=np.uint64)
        slots: np.ndarray = raw.reshape(SINK_SLOTS, -1).sum(axis=1)
        return slots

    def send(
        self,
        frame: bytes,
        ifname: str,
        ns: str,
        *,
        packets: int,
        seconds: float,
        batch_size: int = 64,
    ) -> SendResult:
        """Sends up to `packets` copies of frame (flows varied) out of ifname for at most about
        `seconds` (plus one chunk); runs on the calling thread's CPU.

        Each test run costs ~20 ms of set-up and tear-down (a page pool) during which nothing
        is sent, so rates use busy_seconds: the kernel's timed loop, which also holds the
        receive-side XDP work of the same CPU (softirqs run inline after every batch) and
        leaves out time other tasks took from this CPU."""
        if packets < 1 or seconds <= 0:
            raise DataplaneError("a send needs a packet bound and a time bound")
        self.set_frame(frame)
        buf = ctypes.create_string_buffer(frame, len(frame))
        with netns.entered(_own_namespace(ns)):
            ctx = XdpMd(data_end=len(frame), ingress_ifindex=netns.ifindex(ifname))
            opts = bpf.opts(
                bpf.TestRunOpts,
                data_in=ctypes.cast(buf, ctypes.c_void_p),
                data_size_in=len(frame),
                ctx_in=ctypes.cast(ctypes.pointer(ctx), ctypes.c_void_p),
                ctx_size_in=ctypes.sizeof(ctx),
                flags=BPF_F_TEST_XDP_LIVE_FRAMES,
                batch_size=batch_size,
            )
            return self._loop(opts, packets, seconds)

    def _loop(self, opts: ctypes.Structure, packets: int, seconds: float) -> SendResult:
        prog = self.obj.prog_fd("shoal_trafgen")
        sent, calls, chunk, busy_ns = 0, 0, FIRST_CHUNK, 0
        start = time.perf_counter()
        deadline = start + seconds
        now = start
        while sent < packets and now < deadline:
            opts.repeat = min(chunk, packets - sent)
            rc = self._fn(prog, ctypes.byref(opts))
            if rc != 0:
                raise BpfError("bpf_prog_test_run_opts (live frames)", -rc)
            sent += opts.repeat
            calls += 1
            busy_ns += opts.duration * opts.repeat  # duration: mean ns per frame
            now = time.perf_counter()
            per_frame = max(opts.duration, 1) * 1e-9
            chunk = int(min(MAX_CHUNK, max(64, CHUNK_SECONDS / per_frame)))
        stopped = "packets" if sent >= packets else "seconds"
        return SendResult(sent, now - start, busy_ns * 1e-9, calls, stopped)

    def close(self) -> None:
        self.obj.close()

    def __enter__(self) -> Trafgen:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
