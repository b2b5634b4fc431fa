"""abi.py mirrors bpf/shoal_abi.h exactly: every field's name, offset and the struct sizes are
compared with the BTF that clang wrote into the objects."""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from shoal.dataplane import abi, loader, maglev
from shoal.dataplane import libbpf as bpf
from shoal.dataplane.maps import KernelMap
from shoal.errors import BpfError

PAIRS = {
    "shoal_vip_key": abi.VipKey,
    "shoal_vip_val": abi.VipVal,
    "shoal_backend": abi.Backend,
    "shoal_flow_key": abi.FlowKey,
    "shoal_flow_val": abi.FlowVal,
    "shoal_session_way": abi.SessionWay,
    "shoal_session_set": abi.SessionSet,
    "shoal_session_geom": abi.SessionGeom,
    "shoal_config": abi.Config,
    "shoal_flood_state": abi.FloodState,
    "shoal_traffic": abi.Traffic,
    "shoal_acl4_key": abi.Acl4Key,
    "shoal_acl6_key": abi.Acl6Key,
    "shoal_frag_key": abi.FragKey,
    "shoal_frag_val": abi.FragVal,
    "shoal_icmp_rate": abi.IcmpRate,
}
DECAP_PAIRS = {
    "shoal_lpm4_key": abi.Lpm4Key,
    "shoal_lpm6_key": abi.Lpm6Key,
    "shoal_decap_features": abi.DecapFeatures,
}


def btf_structs(obj: str) -> dict[str, dict]:
    out = subprocess.run(
        ["bpftool", "-j", "btf", "dump", "file", str(loader.bpf_object_path(obj))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {t["name"]: t for t in json.loads(out)["types"] if t["kind"] == "STRUCT"}


HEADER = Path(__file__).resolve().parents[2] / "bpf" / "shoal_abi.h"


def header_enum(name: str) -> dict[str, int]:
    """Members of an enum in shoal_abi.h (constants-only enums do not reach BTF)."""
    body = re.search(r"enum " + name + r" \{(.*?)\};", HEADER.read_text(), re.S)
    assert body, f"enum {name} not in {HEADER}"
    values, nxt = {}, 0
    for line in body.group(1).splitlines():
        m = re.match(r"\s*(SHOAL_\w+)(?:\s*=\s*(\d+))?,", line)
        if m:
            nxt = int(m.group(2)) if m.group(2) else nxt
            values[m.group(1)] = nxt
            nxt += 1
    return values


@pytest.mark.parametrize(
    ("obj", "c_name"), [("lb", n) for n in PAIRS] + [("decap", n) for n in DECAP_PAIRS]
)
def test_struct_layout_matches_btf(obj: str, c_name: str) -> None:
    structs = btf_structs(obj)
    if c_name not in structs:
        pytest.fail(f"{c_name} missing from the object's BTF")
    btf = structs[c_name]
    py = {**PAIRS, **DECAP_PAIRS}[c_name]
    assert btf["size"] == ctypes.sizeof(py)
    c_fields = [(m["name"], m["bits_offset"] // 8) for m in btf["members"]]
    py_fields = [(name, getattr(py, name).offset) for name, *_ in py._fields_]
    assert c_fields == py_fields


def test_decap_config_layout() -> None:
    btf = btf_structs("decap")["shoal_decap_config"]
    assert btf["size"] == ctypes.sizeof(abi.DecapConfig)


def test_counter_enums_match() -> None:
    c = header_enum("shoal_counter")
    assert {f"SHOAL_CNT_{m.name}": m.value for m in abi.Counter} == {
        k: v for k, v in c.items() if k != "SHOAL_CNT_MAX"
    }
    d = header_enum("shoal_decap_counter")
    assert {f"SHOAL_DECAP_{m.name}": m.value for m in abi.DecapCounter} == {
        k: v for k, v in d.items() if k != "SHOAL_DECAP_CNT_MAX"
    }


def test_counter_maps_have_room_to_append() -> None:
    """Appending a counter must not change the maps' layout (their pinned size)."""
    text = HEADER.read_text()
    assert f"#define SHOAL_CNT_SLOTS {abi.COUNTER_SLOTS}" in text
    assert f"#define SHOAL_DECAP_CNT_SLOTS {abi.DECAP_COUNTER_SLOTS}" in text
    assert f"#define SHOAL_MAX_ACL_PREFIXES {abi.MAX_ACL_PREFIXES}" in text
    assert f"#define SHOAL_SESSION_WAYS {abi.SESSION_WAYS}" in text
    assert f"#define SHOAL_SESSION_SHARD_SHIFT {abi.SESSION_SHARD_SHIFT}" in text
    assert f"#define SHOAL_DECAP_MAX_PREFIXES {abi.DECAP_MAX_PREFIXES}" in text
    assert len(abi.Counter) < abi.COUNTER_SLOTS
    assert len(abi.DecapCounter) < abi.DECAP_COUNTER_SLOTS


def test_a_session_key_is_matched_on_the_bytes_before_admitted() -> None:
    """The program masks the flow key's fifth word at SHOAL_FLOW_ADMITTED_SHIFT; Python
    compares the bytes before FlowKey.admitted: the same split, and 24 bits of epoch."""
    text = HEADER.read_text()
    assert abi.FlowKey.admitted.offset == abi.FLOW_KEY_MATCHED
    assert "#define SHOAL_FLOW_KEY_WORD4_MASK ((1ULL << 40) - 1)" in text
    assert "#define SHOAL_FLOW_ADMITTED_SHIFT 40" in text
    assert (abi.FLOW_KEY_MATCHED - 32) * 8 == 40
    assert f"#define SHOAL_ACL_EPOCH_MASK 0x{abi.ACL_EPOCH_MASK:x}U" in text
    assert abi.FlowKey.admitted.size * 8 == abi.ACL_EPOCH_MASK.bit_length()


def test_second_chance_wire_form() -> None:
    """The option structs travel in packets only (not in BTF): sizes, the address's offset and
    the option numbers are what shoal_abi.h defines."""
    assert (ctypes.sizeof(abi.Chance4), abi.Chance4.prev.offset) == (8, 4)
    assert (ctypes.sizeof(abi.Chance6), abi.Chance6.prev.offset) == (24, 8)
    text = HEADER.read_text()
    assert f"#define SHOAL_CHANCE_OPT4 0x{abi.CHANCE_OPT4:X}" in text
    assert f"#define SHOAL_CHANCE_OPT6 0x{abi.CHANCE_OPT6:X}" in text
    # RFC 8200 4.2: the two high bits 00 mean "skip if unknown", the third 0 "not changed en
    # route"; RFC 791: the copy bit clear keeps it out of fragments.
    assert abi.CHANCE_OPT6 >> 5 == 0 and abi.CHANCE_OPT4 & 0x80 == 0


def test_maglev_classes_match_the_header_the_table_sizes_and_the_maps() -> None:
    """Python's table classes are the header's X(class, size) list and maglev.TABLE_SIZES,
    and each class's outer maps take inner maps of exactly 1 + size entries and no others:
    a table in the wrong class's map is refused by the kernel, never read at another size."""
    listed = re.search(r"#define SHOAL_MAGLEV_CLASSES\(X\) (.*)", HEADER.read_text())
    assert listed
    pairs = [(int(c), int(m)) for c, m in re.findall(r"X\((\d+), (\d+)\)", listed.group(1))]
    sizes = abi.MAGLEV_CLASS_SIZES
    assert pairs == list(enumerate(sizes, start=1))
    assert sizes == maglev.TABLE_SIZES
    assert f"#define SHOAL_MCLASS_PREV_SHIFT {abi.MCLASS_PREV_SHIFT}" in HEADER.read_text()
    with loader.BpfObject(loader.bpf_object_path("lb"), None, {}) as obj:
        lib = bpf.lib()
        for names in (abi.MAGLEV_CURRENT_MAPS[1:], abi.MAGLEV_PREVIOUS_MAPS[1:]):
            for name, size in zip(names, sizes, strict=True):
                outer = KernelMap(obj.map_fd(name))
                for entries, fits in ((size + 1, True), (size + 2, False), (size, False)):
                    fd = lib.call(
                        "bpf_map_create", bpf.BPF_MAP_TYPE_ARRAY, b"t", 4, 4, entries, None
                    )
                    try:
                        if fits:
                            outer.update(bytes(4), fd.to_bytes(4, "little"))
                        else:
                            with pytest.raises(BpfError):
                                outer.update(bytes(4), fd.to_bytes(4, "little"))
                    finally:
                        os.close(fd)
