"""ctypes binding to the system libbpf (Debian's libbpf1): only the calls Shoal uses.

libbpf 1.x returns -errno from int functions and NULL (errno set) from pointer functions; every
wrapper here turns that into a BpfError naming the call. libbpf's own log lines are captured so
a verifier rejection can be shown to the user instead of a bare EACCES."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable
from typing import Any

from shoal.errors import BpfError, DataplaneError

__all__ = [
    "BPF_ANY",
    "BPF_EXIST",
    "BPF_F_INNER_MAP",
    "BPF_MAP_TYPE_ARRAY",
    "BPF_NOEXIST",
    "BPF_TC_INGRESS",
    "XDP_FLAGS_DRV_MODE",
    "XDP_FLAGS_REPLACE",
    "XDP_FLAGS_SKB_MODE",
    "XDP_FLAGS_UPDATE_IF_NOEXIST",
    "Lib",
    "lib",
]

log = logging.getLogger(__name__)

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_MAP_TYPE_ARRAY = 2
BPF_F_INNER_MAP = 1 << 12
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_REPLACE = 1 << 4
BPF_TC_INGRESS = 1 << 0
BPF_TC_EGRESS = 1 << 1

c_size_t = ctypes.c_size_t
c_void_p = ctypes.c_void_p


class ObjectOpenOpts(ctypes.Structure):
    """struct bpf_object_open_opts, up to kernel_log_level (libbpf 1.1)."""

    _fields_ = [
        ("sz", c_size_t),
        ("object_name", ctypes.c_char_p),
        ("relaxed_maps", ctypes.c_bool),
        ("pin_root_path", ctypes.c_char_p),
        ("_attach_prog_fd", ctypes.c_uint32),
        ("kconfig", ctypes.c_char_p),
        ("btf_custom_path", ctypes.c_char_p),
        ("kernel_log_buf", ctypes.c_char_p),
        ("kernel_log_size", c_size_t),
        ("kernel_log_level", ctypes.c_uint32),
    ]


class MapCreateOpts(ctypes.Structure):
    """struct bpf_map_create_opts."""

    _fields_ = [
        ("sz", c_size_t),
        ("btf_fd", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("map_extra", ctypes.c_uint64),
        ("numa_node", ctypes.c_uint32),
        ("map_ifindex", ctypes.c_uint32),
    ]


class BatchOpts(ctypes.Structure):
    """struct bpf_map_batch_opts."""

    _fields_ = [("sz", c_size_t), ("elem_flags", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class TestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts."""

    __test__ = False  # not a pytest class
    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class XdpAttachOpts(ctypes.Structure):
    """struct bpf_xdp_attach_opts."""

    _fields_ = [("sz", c_size_t), ("old_prog_fd", ctypes.c_int)]


class TcHook(ctypes.Structure):
    """struct bpf_tc_hook."""

    _fields_ = [
        ("sz", c_size_t),
        ("ifindex", ctypes.c_int),
        ("attach_point", ctypes.c_int),
        ("parent", ctypes.c_uint32),
    ]


class TcOpts(ctypes.Structure):
    """struct bpf_tc_opts."""

    _fields_ = [
        ("sz", c_size_t),
        ("prog_fd", ctypes.c_int),
        ("flags", ctypes.c_uint32),
        ("prog_id", ctypes.c_uint32),
        ("handle", ctypes.c_uint32),
        ("priority", ctypes.c_uint32),
    ]


class MapInfo(ctypes.Structure):
    """struct bpf_map_info (the fields Shoal reads come first)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
        ("ifindex", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("netns_dev", ctypes.c_uint64),
        ("netns_ino", ctypes.c_uint64),
        ("btf_id", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("map_extra", ctypes.c_uint64),
    ]


class ProgInfo(ctypes.Structure):
    """struct bpf_prog_info up to its name (the kernel accepts a shorter info_len)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16),
    ]


def opts(struct_type: type[ctypes.Structure], **fields: Any) -> ctypes.Structure:
    """An opts struct with sz filled in, as the LIBBPF_OPTS macro does."""
    value = struct_type(**fields)
    value.sz = ctypes.sizeof(struct_type)
    return value


PrintFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, c_void_p)

_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "bpf_object__open_file": (c_void_p, [ctypes.c_char_p, c_void_p]),
    "bpf_object__load": (ctypes.c_int, [c_void_p]),
    "bpf_object__close": (None, [c_void_p]),
    "bpf_object__find_program_by_name": (c_void_p, [c_void_p, ctypes.c_char_p]),
    "bpf_object__find_map_by_name": (c_void_p, [c_void_p, ctypes.c_char_p]),
    "bpf_program__fd": (ctypes.c_int, [c_void_p]),
    "bpf_map__fd": (ctypes.c_int, [c_void_p]),
    "bpf_map__set_max_entries": (ctypes.c_int, [c_void_p, ctypes.c_uint32]),
    "bpf_map__max_entries": (ctypes.c_uint32, [c_void_p]),
    "bpf_map__set_initial_value": (ctypes.c_int, [c_void_p, ctypes.c_char_p, c_size_t]),
    "bpf_map__key_size": (ctypes.c_uint32, [c_void_p]),
    "bpf_map__value_size": (ctypes.c_uint32, [c_void_p]),
    "bpf_map__set_pin_path": (ctypes.c_int, [c_void_p, ctypes.c_char_p]),
    "bpf_map_create": (
        ctypes.c_int,
        [
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_uint32,
            ctypes.c_uint32,
            ctypes.c_uint32,
            c_void_p,
        ],
    ),
    "bpf_map_update_elem": (ctypes.c_int, [ctypes.c_int, c_void_p, c_void_p, ctypes.c_uint64]),
    "bpf_map_lookup_elem": (ctypes.c_int, [ctypes.c_int, c_void_p, c_void_p]),
    "bpf_map_delete_elem": (ctypes.c_int, [ctypes.c_int, c_void_p]),
    "bpf_map_get_next_key": (ctypes.c_int, [ctypes.c_int, c_void_p, c_void_p]),
    "bpf_map_update_batch": (ctypes.c_int, [ctypes.c_int, c_void_p, c_void_p, c_void_p, c_void_p]),
    "bpf_map_lookup_batch": (
        ctypes.c_int,
        [ctypes.c_int, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p],
    ),
    "bpf_obj_get": (ctypes.c_int, [ctypes.c_char_p]),
    "bpf_obj_pin": (ctypes.c_int, [ctypes.c_int, ctypes.c_char_p]),
    "bpf_obj_get_info_by_fd": (ctypes.c_int, [ctypes.c_int, c_void_p, c_void_p]),
    "bpf_map_get_fd_by_id": (ctypes.c_int, [ctypes.c_uint32]),
    "bpf_prog_get_fd_by_id": (ctypes.c_int, [ctypes.c_uint32]),
    "bpf_xdp_attach": (ctypes.c_int, [ctypes.c_int, ctypes.c_int, ctypes.c_uint32, c_void_p]),
    "bpf_xdp_detach": (ctypes.c_int, [ctypes.c_int, ctypes.c_uint32, c_void_p]),
    "bpf_xdp_query_id": (ctypes.c_int, [ctypes.c_int, ctypes.c_int, c_void_p]),
    "bpf_prog_test_run_opts": (ctypes.c_int, [ctypes.c_int, c_void_p]),
    "bpf_tc_hook_create": (ctypes.c_int, [c_void_p]),
    "bpf_tc_hook_destroy": (ctypes.c_int, [c_void_p]),
    "bpf_tc_attach": (ctypes.c_int, [c_void_p, c_void_p]),
    "bpf_tc_detach": (ctypes.c_int, [c_void_p, c_void_p]),
    "bpf_tc_query": (ctypes.c_int, [c_void_p, c_void_p]),
    "libbpf_num_possible_cpus": (ctypes.c_int, []),
    "libbpf_set_print": (c_void_p, [PrintFn]),
}


class Lib:
    """The loaded libbpf with typed functions and the captured log of the last failures."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("bpf") or "libbpf.so.1"
        try:
            self.so = ctypes.CDLL(name, use_errno=True)
        except OSError as exc:
            raise DataplaneError(
                "libbpf (Debian package libbpf1) is not installed; run `make deps`"
            ) from exc
        self._libc = ctypes.CDLL(None)
        for fn_name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(self.so, fn_name)
            fn.restype = restype
            fn.argtypes = argtypes
        self._log: list[str] = []
        self._log_lock = threading.Lock()
        self._print_cb = PrintFn(self._on_print)  # kept alive for libbpf's lifetime
        self.so.libbpf_set_print(self._print_cb)
        self.ncpus = self.so.libbpf_num_possible_cpus()

    def _on_print(self, level: int, fmt: bytes, va_list: int) -> int:
        buf = ctypes.create_string_buffer(4096)
        self._libc.vsnprintf(buf, ctypes.c_size_t(len(buf)), fmt, ctypes.c_void_p(va_list))
        line = buf.value.decode(errors="replace").rstrip()
        with self._log_lock:
            self._log.append(line)
            del self._log[:-400]
        if level == 0:  # LIBBPF_WARN
            log.debug("libbpf: %s", line)
        return 0

    def take_log(self) -> list[str]:
        """The libbpf lines captured since the last call (verifier output on load failure)."""
        with self._log_lock:
            lines, self._log = self._log, []
        return lines

    def call(self, fn_name: str, *args: Any) -> int:
        """Calls an int-returning libbpf function; negative results raise BpfError."""
        rc = int(getattr(self.so, fn_name)(*args))
        if rc < 0:
            raise BpfError(fn_name, -rc)
        return rc

    def call_ptr(self, fn_name: str, *args: Any) -> int:
        """Calls a pointer-returning libbpf function; NULL raises BpfError with errno."""
        ptr = getattr(self.so, fn_name)(*args)
        if not ptr:
            raise BpfError(fn_name, ctypes.get_errno() or 22)
        return int(ptr)

    def func(self, fn_name: str) -> Callable[..., Any]:
        return getattr(self.so, fn_name)  # type: ignore[no-any-return]


_lib: Lib | None = None
_lib_lock = threading.Lock()


def lib() -> Lib:
    """The process-wide libbpf binding, loaded on first use."""
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = Lib()
        return _lib
