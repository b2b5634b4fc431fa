"""Shoal's exception tree. Errors from the kernel, libbpf, netlink and files are translated into
these at the boundary, so callers (CLI, agents, API) handle one family and print one line."""

from __future__ import annotations

import errno
import os

__all__ = ["BpfError", "ConfigError", "DataplaneError", "NetnsError", "ShoalError"]


class ShoalError(Exception):
    """Base of every error Shoal raises on purpose; str() is one readable line."""


class ConfigError(ShoalError, ValueError):
    """A configuration was refused; nothing was applied."""


class DataplaneError(ShoalError):
    """The data plane could not be loaded, attached or updated."""


class NetnsError(ShoalError):
    """A network namespace or link operation failed."""


class BpfError(DataplaneError, OSError):
    """A libbpf or bpf(2) call failed with an errno."""

    def __init__(self, what: str, err: int) -> None:
        err = abs(err)
        self.errno_value = err
        name = errno.errorcode.get(err, str(err))
        super().__init__(f"{what}: {os.strerror(err)} ({name})")
