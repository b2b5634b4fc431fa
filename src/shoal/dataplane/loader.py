"""Loading BPF objects with libbpf: pinned maps, verifier logs on failure, XDP and tc attach.

Maps are pinned by name under /sys/fs/bpf/shoal/<instance>/, so a second load (agent restart,
upgrade) reuses them: sessions, tables and counters survive and the new program is swapped onto
the interface atomically. Programs are attached through netlink, so they keep running after the
loading process exits."""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

from shoal import procs
from shoal.dataplane import libbpf as bpf
from shoal.errors import BpfError, DataplaneError

__all__ = [
    "PIN_ROOT",
    "SCRATCH_PREFIX",
    "BpfObject",
    "attach_tc_ingress",
    "attach_xdp",
    "bpf_object_path",
    "detach_tc_ingress",
    "detach_xdp",
    "ensure_bpffs",
    "remove_stale_scratch",
    "xdp_prog_id",
]

BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "shoal"
OBJECT_DIR = Path(__file__).resolve().parent.parent / "_bpf"
_scratch = itertools.count()


def bpf_object_path(name: str) -> Path:
    """Path of a compiled object (lb, decap, trivial); built by `make build`."""
    path = OBJECT_DIR / f"{name}.bpf.o"
    if not path.exists():
        raise DataplaneError(f"{path} is missing: build the BPF programs with `make build`")
    return path


def ensure_bpffs() -> None:
    """Mounts bpffs on /sys/fs/bpf unless it already is (fresh machines lack it)."""
    with open("/proc/self/mounts") as mounts:
        if any(line.split()[1:3] == [str(BPFFS), "bpf"] for line in mounts):
            return
    proc = subprocess.run(
        ["mount", "-t", "bpf", "bpf", str(BPFFS)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise DataplaneError(f"cannot mount bpffs on {BPFFS}: {proc.stderr.strip()}")


SCRATCH_PREFIX = "shoal_scratch_"


def remove_stale_scratch() -> list[Path]:
    """Removes the scratch pin dirs of processes that no longer exist (one killed during a
    load leaves its dir behind); those of live processes are theirs. Returns what it removed."""
    removed = []
    for path in BPFFS.glob(f"{SCRATCH_PREFIX}*_*"):
        pid = path.name[len(SCRATCH_PREFIX) :].split("_", 1)[0]
        if not pid.isdigit() or procs.alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


class BpfObject:
    """An opened and loaded BPF object. pin_dir=None loads with private (unpinned) maps."""

    def __init__(
        self,
        path: Path,
        pin_dir: Path | None,
        max_entries: dict[str, int] | None = None,
        rodata: dict[str, bytes] | None = None,
    ) -> None:
        """rodata: initial contents of read-only data sections by name (load-time switches,
        e.g. features.decap_rodata); each must be the section's exact size."""
        self._lib = bpf.lib()
        ensure_bpffs()
        # With no pin dir, pin into a scratch dir and unpin right after load: maps then live
        # exactly as long as this object.
        self._scratch = None
        if pin_dir is None:
            remove_stale_scratch()
            pin_dir = BPFFS / f"{SCRATCH_PREFIX}{os.getpid()}_{next(_scratch)}"
            self._scratch = pin_dir
        pin_dir.mkdir(parents=True, exist_ok=True)
        self.pin_dir = pin_dir
        self._pin_arg = ctypes.c_char_p(str(pin_dir).encode())
        opts = bpf.opts(bpf.ObjectOpenOpts, pin_root_path=self._pin_arg)
        self._lib.take_log()
        self.obj = 0
        try:
            self.obj = self._lib.call_ptr(
                "bpf_object__open_file", str(path).encode(), ctypes.byref(opts)
            )
            for name, entries in (max_entries or {}).items():
                self._lib.call("bpf_map__set_max_entries", self._map_ptr(name), entries)
            for name, data in (rodata or {}).items():
                self._lib.call("bpf_map__set_initial_value", self._map_ptr(name), data, len(data))
            rc = self._lib.func("bpf_object__load")(self.obj)
            if rc < 0:
                raise self._load_error(path, -rc)
        except BaseException:  # an object that does not open or load leaves no scratch dir
            if self.obj:
                self._lib.func("bpf_object__close")(self.obj)
            self.obj = 0
            self._drop_scratch()
            raise
        self._drop_scratch()

    def _load_error(self, path: Path, err: int) -> DataplaneError:
        lines = self._lib.take_log()
        reuse = [line for line in lines if "reuse pinned map" in line or "mismatch" in line]
        if reuse:
            return DataplaneError(
                f"maps pinned under {self.pin_dir} do not match {path.name} "
                f"({reuse[0].strip()}); remove them with `shoal dataplane purge` (drops sessions)"
            )
        tail = "\n".join(lines[-25:])
        return DataplaneError(f"loading {path.name} failed ({BpfError('load', err)}):\n{tail}")

    def _drop_scratch(self) -> None:
        if self._scratch is not None and self._scratch.exists():
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _map_ptr(self, name: str) -> int:
        return self._lib.call_ptr("bpf_object__find_map_by_name", self.obj, name.encode())

    def map_fd(self, name: str) -> int:
        return self._lib.call("bpf_map__fd", self._map_ptr(name))

    def prog_fd(self, name: str) -> int:
        prog = self._lib.call_ptr("bpf_object__find_program_by_name", self.obj, name.encode())
        return self._lib.call("bpf_program__fd", prog)

    def close(self) -> None:
        if self.obj:
            self._lib.func("bpf_object__close")(self.obj)
            self.obj = 0

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def xdp_prog_id(ifindex: int) -> int:
    """ID of the XDP program attached to ifindex (0 = none), in the current netns."""
    prog_id = ctypes.c_uint32(0)
    bpf.lib().call("bpf_xdp_query_id", ifindex, 0, ctypes.byref(prog_id))
    return prog_id.value


XDP_MODES = {"native": bpf.XDP_FLAGS_DRV_MODE, "generic": bpf.XDP_FLAGS_SKB_MODE}


def attach_xdp(ifindex: int, prog_fd: int, mode: str = "auto") -> str:
    """Attaches (or atomically replaces) the XDP program; returns the mode used."""
    lib = bpf.lib()
    modes = ["native", "generic"] if mode == "auto" else [mode]
    if any(m not in XDP_MODES for m in modes):
        raise DataplaneError(f"unknown XDP mode {mode!r}: use native, generic or auto")
    last: BpfError | None = None
    for m in modes:
        try:
            lib.call("bpf_xdp_attach", ifindex, prog_fd, XDP_MODES[m], None)
            return m
        except BpfError as exc:
            last = exc
    assert last is not None
    raise DataplaneError(f"cannot attach XDP to ifindex {ifindex}: {last}")


def detach_xdp(ifindex: int) -> bool:
    """Detaches whatever XDP program is attached (either mode); False when none was."""
    if not xdp_prog_id(ifindex):
        return False
    lib = bpf.lib()
    for flags in (bpf.XDP_FLAGS_DRV_MODE, bpf.XDP_FLAGS_SKB_MODE):
        lib.func("bpf_xdp_detach")(ifindex, flags, None)
    return True


def _tc_hook(ifindex: int) -> bpf.TcHook:
    hook = bpf.opts(bpf.TcHook, ifindex=ifindex, attach_point=bpf.BPF_TC_INGRESS)
    return hook  # type: ignore[return-value]


TC_HANDLE, TC_PRIORITY = 0x5BA1, 1  # ours, so detach never removes someone else's filter


def attach_tc_ingress(ifindex: int, prog_fd: int) -> None:
    """Attaches prog at tc ingress (clsact created if needed), replacing our previous one."""
    lib = bpf.lib()
    hook = _tc_hook(ifindex)
    rc = lib.func("bpf_tc_hook_create")(ctypes.byref(hook))
    if rc < 0 and rc != -17:  # EEXIST: clsact already there
        raise BpfError("bpf_tc_hook_create", -rc)
    tc_opts = bpf.opts(
        bpf.TcOpts, prog_fd=prog_fd, handle=TC_HANDLE, priority=TC_PRIORITY, flags=1
    )  # BPF_TC_F_REPLACE
    lib.call("bpf_tc_attach", ctypes.byref(hook), ctypes.byref(tc_opts))


def detach_tc_ingress(ifindex: int) -> bool:
    lib = bpf.lib()
    hook = _tc_hook(ifindex)
    tc_opts = bpf.opts(bpf.TcOpts, handle=TC_HANDLE, priority=TC_PRIORITY)
    return int(lib.func("bpf_tc_detach")(ctypes.byref(hook), ctypes.byref(tc_opts))) == 0
