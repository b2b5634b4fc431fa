"""One truth for the L4 maps: the pins under /sys/fs/bpf/shoal/<instance>/.

A program attached to the interface holds its maps by reference, so after a purge, a remount of
bpffs or a load that did not reuse the pins, the running program and the pins can name different
maps: the next load would then go back to the pinned ones and silently drop every session the
running program wrote since. This module compares the attached program's map ids
(bpf_prog_info.map_ids) with the pinned maps' ids, before a load (adopting the live maps into
the pins: they carry the traffic) and after the attach (proving the pins are what runs).

It also carries a node's settings across the one layout change of the config map (v1 -> v2):
the new program must not run with an empty config between its attach and the agent's first
apply (a zero hash seed would send every cache miss to another backend)."""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from shoal.dataplane import abi, clock
from shoal.dataplane import libbpf as bpf
from shoal.dataplane.config import Settings
from shoal.dataplane.maps import KernelMap, TypedMap
from shoal.dataplane.sessions import ShardedSets
from shoal.errors import BpfError, DataplaneError

__all__ = [
    "MapCheck",
    "adopt_live_maps",
    "carry_config_v1",
    "carry_flat_sessions",
    "check_attached",
    "drop_sessions_v1",
    "give_back_flat_sessions",
    "prog_map_ids",
    "take_flat_sessions",
]

log = logging.getLogger("shoal.dataplane.pins")
PROG_NAME = b"shoal_lb"
NAME_LEN = 15  # bpf_map_info.name keeps the first 15 characters of a map's name


@dataclass
class MapCheck:
    """What a comparison of the attached program with the pins found."""

    prog_id: int = 0  # 0: no Shoal program attached
    adopted: list[str] = field(default_factory=list)  # live maps pinned in place of others
    diverged: list[str] = field(default_factory=list)  # live maps that differ and stay unpinned

    @property
    def consistent(self) -> bool:
        return not self.adopted and not self.diverged


def _fd_info(fd: int) -> bpf.MapInfo:
    info = bpf.MapInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    bpf.lib().call("bpf_obj_get_info_by_fd", fd, ctypes.byref(info), ctypes.byref(size))
    return info


def prog_map_ids(prog_id: int) -> tuple[bytes, list[int]]:
    """The program's name and the ids of the maps it uses."""
    lib = bpf.lib()
    fd = lib.call("bpf_prog_get_fd_by_id", prog_id)
    try:
        ids = (ctypes.c_uint32 * 64)()
        info = bpf.ProgInfo(nr_map_ids=64, map_ids=ctypes.addressof(ids))
        size = ctypes.c_uint32(ctypes.sizeof(info))
        lib.call("bpf_obj_get_info_by_fd", fd, ctypes.byref(info), ctypes.byref(size))
        return info.name, list(ids[: min(info.nr_map_ids, 64)])
    finally:
        os.close(fd)


def _pinned_id(path: Path) -> int | None:
    if not path.exists():
        return None
    fd = bpf.lib().call("bpf_obj_get", str(path).encode())
    try:
        return int(_fd_info(fd).id)
    finally:
        os.close(fd)


def _live_maps(prog_id: int) -> dict[str, tuple[int, bpf.MapInfo]] | None:
    """Truncated map name -> (fd, info) of the attached program, None if it is not ours.
    The caller closes the fds."""
    name, ids = prog_map_ids(prog_id)
    if name != PROG_NAME:
        return None
    out: dict[str, tuple[int, bpf.MapInfo]] = {}
    for map_id in ids:
        fd = bpf.lib().call("bpf_map_get_fd_by_id", map_id)
        info = _fd_info(fd)
        out[info.name.decode()] = (fd, info)
    return out


def _compare(prog_id: int, pin_dir: Path, adopt: bool) -> MapCheck:
    check = MapCheck(prog_id=prog_id)
    live = _live_maps(prog_id)
    if live is None:
        check.prog_id = 0
        return check
    try:
        for name in [*abi.LB_MAPS, *abi.TABLE_MAPS]:
            entry = live.get(name[:NAME_LEN])
            if entry is None:
                continue  # the running program predates this map: the load creates it
            fd, info = entry
            path = pin_dir / name
            pinned = _pinned_id(path)
            if pinned == info.id:
                continue
            if adopt and _same_layout(info, path):
                # The live map holds what traffic uses now: it becomes the pinned one.
                path.parent.mkdir(parents=True, exist_ok=True)
                path.unlink(missing_ok=True)
                bpf.lib().call("bpf_obj_pin", fd, str(path).encode())
                check.adopted.append(name)
            else:
                check.diverged.append(name)
    finally:
        for fd, _ in live.values():
            os.close(fd)
    return check


def _same_layout(info: bpf.MapInfo, path: Path) -> bool:
    """A live map may replace a pin only if the new program can use it (the name's 15
    characters do not tell v1 from v2)."""
    if not path.exists():
        return True
    fd = bpf.lib().call("bpf_obj_get", str(path).encode())
    try:
        pinned = _fd_info(fd)
    finally:
        os.close(fd)
    return (pinned.type, pinned.key_size, pinned.value_size, pinned.max_entries) == (
        info.type,
        info.key_size,
        info.value_size,
        info.max_entries,
    )


def adopt_live_maps(prog_id: int, pin_dir: Path) -> MapCheck:
    """Before a load: pins the attached Shoal program's maps where the pins differ, so the new
    program is built on what runs. Maps that cannot be adopted are listed in `diverged`."""
    if not prog_id:
        return MapCheck()
    check = _compare(prog_id, pin_dir, adopt=True)
    if check.adopted:
        log.warning(
            "the attached program (id %d) used maps other than the pins under %s: %s; "
            "pinned the live ones (their sessions are kept)",
            prog_id,
            pin_dir,
            ", ".join(check.adopted),
        )
    if check.diverged:
        log.error(
            "the attached program (id %d) uses maps the new program cannot take over: %s",
            prog_id,
            ", ".join(check.diverged),
        )
    return check


def check_attached(prog_id: int, pin_dir: Path) -> None:
    """After an attach: the program on the interface must use exactly the pinned maps."""
    if not prog_id:
        raise DataplaneError("no XDP program is attached after the attach")
    check = _compare(prog_id, pin_dir, adopt=False)
    if check.prog_id == 0:
        raise DataplaneError(f"program {prog_id} on the interface is not Shoal's")
    if check.diverged:
        raise DataplaneError(
            f"the attached program (id {prog_id}) does not use the maps pinned under "
            f"{pin_dir}: {', '.join(check.diverged)}"
        )


def carry_config_v1(pin_dir: Path, config: TypedMap[ctypes.c_uint32, abi.Config]) -> bool:
    """Copies a pinned shoal_config_v1 into an empty v2 (v2 only appends the TCP timeouts,
    given their defaults here) and unpins v1. True when something was carried."""
    path = pin_dir / "shoal_config_v1"
    if not path.exists():
        return False
    lib = bpf.lib()
    old = KernelMap(lib.call("bpf_obj_get", str(path).encode()), own_fd=True)
    try:
        raw = old.lookup((0).to_bytes(4, "little"))
    except BpfError:
        raw = None
    finally:
        old.close()
    current = config.get(0)
    carried = False
    if raw and (current is None or not any(bytes(current))):
        size = ctypes.sizeof(abi.Config)
        words = abi.Config.from_buffer_copy(raw[:size].ljust(size, b"\0"))
        defaults = Settings()
        words.tcp_timeout = clock.to_jiffies(defaults.tcp_timeout)
        words.tcp_closing_timeout = clock.to_jiffies(defaults.tcp_closing_timeout)
        config.set(0, words)
        carried = True
        log.info("carried the node settings from shoal_config_v1 into shoal_config_v2")
    path.unlink()
    return carried


def take_flat_sessions(pin_dir: Path) -> KernelMap | None:
    """Before a load that shards the session table: unpins a flat shoal_sessions_v2 that holds
    the table (an earlier program's, or a kernel before 6.8's) and returns it, so the load
    creates the one-entry map it wants and carry_flat_sessions() moves the flows."""
    path = pin_dir / "shoal_sessions_v2"
    if not path.exists():
        return None
    flat = KernelMap(bpf.lib().call("bpf_obj_get", str(path).encode()), own_fd=True)
    if flat.max_entries <= 1:
        flat.close()
        return None  # already the sharded layout's placeholder
    path.unlink()
    # The flat layout's one-entry outer map (this release on an older kernel) holds nothing.
    placeholder = pin_dir / abi.SESSIONS_MAP
    if placeholder.exists():
        outer = KernelMap(bpf.lib().call("bpf_obj_get", str(placeholder).encode()), own_fd=True)
        if outer.max_entries <= 1:
            placeholder.unlink()
        outer.close()
    return flat


def give_back_flat_sessions(pin_dir: Path, flat: KernelMap) -> None:
    """After a load that took the flat table and then failed: pins it again, so the next load
    still finds the flows and carries them (the program still attached goes on using it
    meanwhile). What the failed load pinned in its place, the one-entry placeholder and the
    shards (take_flat_sessions left neither), serves no program and gives way."""
    path = pin_dir / "shoal_sessions_v2"
    if path.exists():
        left = KernelMap(bpf.lib().call("bpf_obj_get", str(path).encode()), own_fd=True)
        placeholder = left.max_entries <= 1
        left.close()
        if not placeholder:
            return  # another table is pinned there: not ours to replace
        path.unlink()
    (pin_dir / abi.SESSIONS_MAP).unlink(missing_ok=True)
    bpf.lib().call("bpf_obj_pin", flat.fd, str(path).encode())
    log.info("session table: the load failed; the flat table is pinned again")


def carry_flat_sessions(flat: KernelMap, shards: ShardedSets) -> bool:
    """Copies a flat table's sets into new shards. The geometry map is kept, so every flow's
    set keeps its index and every entry stays valid; a table of another size is dropped
    instead (its flows are hashed afresh: Maglev gives most the same backend). Entries the old
    program writes until the new one replaces it are not carried."""
    carried = bool(flat.max_entries == shards.max_entries and flat.value_size == shards.value_size)
    if carried:
        shards.write_all(flat.lookup_all_array())
    log.info(
        "session table: %s the flat shoal_sessions_v2 (%d sets) into %d shards",
        "carried" if carried else "dropped",
        flat.max_entries,
        shards.shards,
    )
    return carried


def drop_sessions_v1(pin_dir: Path) -> bool:
    """Unpins the LRU-hash session cache of programs before shoal_sessions_v2 (its layout
    cannot be read as sets). A program still attached keeps its own reference until the new one
    replaces it; flows it cached are then hashed afresh (Maglev gives most the same backend)."""
    path = pin_dir / "shoal_sessions_v1"
    if not path.exists():
        return False
    path.unlink()
    log.info("unpinned shoal_sessions_v1 (replaced by the set-associative shoal_sessions_v2)")
    return True
