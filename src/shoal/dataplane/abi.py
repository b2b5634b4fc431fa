"""Python mirror of bpf/shoal_abi.h: every struct, flag and counter the data plane shares.

Field names match the C ones. Map key and value sizes are checked against the loaded object
when maps are opened, and a test compares every field offset with the object's BTF, so a
layout drift fails loudly instead of corrupting maps."""

from __future__ import annotations

import ctypes
import enum

__all__ = [
    "Acl4Key",
    "Acl6Key",
    "Backend",
    "Chance4",
    "Chance6",
    "Config",
    "Counter",
    "DecapConfig",
    "DecapCounter",
    "DecapFeatures",
    "FloodState",
    "FlowKey",
    "FlowVal",
    "Lpm4Key",
    "Lpm6Key",
    "Nexthop",
    "SessionGeom",
    "SessionSet",
    "SessionWay",
    "Traffic",
    "VipKey",
    "VipVal",
]

u8, u16, u32, u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64

VIP_FILTER_BITS = 16
VIP_FILTER_WORDS = (1 << VIP_FILTER_BITS) // 64
VIP_FILTER_MULT = 0x9E3779B1

MAX_VIPS = 4096
MAX_BACKENDS = 65536
DEFAULT_SESSIONS = 4_194_304
SESSION_WAYS = 4  # ways of a session-cache set (shoal_session_shards_v1)
# log2 of sets per session shard: 128 sets (30 KiB), under the kernel's 32 KiB kmalloc limit for
# an array, so the shard sits in the direct map (huge pages) instead of vmalloc memory.
SESSION_SHARD_SHIFT = 7
SESSIONS_MAP = "shoal_session_shards_v1"  # the outer map of the session shards
MAX_ACL_PREFIXES = 16384
COUNTER_SLOTS = 64
DECAP_COUNTER_SLOTS = 32
DECAP_MAX_PREFIXES = 1024

VIP_F_ANY_PORT = 1 << 0
VIP_F_GUE = 1 << 1
VIP_F_SRC_HASH = 1 << 2
VIP_F_ACL = 1 << 3
VIP_F_SRV6 = 1 << 4

BE_F_USABLE = 1 << 0
BE_F_DRAINING = 1 << 1

FLOW_CLOSING = 1 << 63  # in FlowVal.touched: the flow sent a FIN or an RST
# FlowVal.touched, bits 48-62: the backend's table_gen when the entry was written; the time
# (jiffies) is the low 48 bits.
FLOW_GEN_SHIFT = 48
FLOW_GEN_BITS = 0x7FFF
FLOW_TIME = (1 << FLOW_GEN_SHIFT) - 1
SYN_MARKS = 65536  # entries of shoal_syn_marks_v1
# FlowKey.admitted of a stored way: the low 24 bits of the VIP's ACL word (shoal_acl_words_v1)
# whose list let the flow through, 0 for none; a lookup compares the key's bytes before it.
ACL_EPOCH_MASK = 0xFFFFFF
FLOW_KEY_MATCHED = 37

CFG_F_FIB = 1 << 0
CFG_F_GW_MAC = 1 << 1
CFG_F_NO_CHANCE = 1 << 2
CFG_F_FIB_PER_FLOW = 1 << 3
FRAG_ENTRIES = 16384

# Second chance: the previous owner in the outer header (see shoal_abi.h).
CHANCE_OPT4 = 0x5E  # IPv4 option, RFC 4727 experimental
CHANCE_OPT6 = 0x1E  # IPv6 destination option, RFC 4727 experimental, skipped if unknown
CHANCE_F_REDIRECTED = 1 << 0

DECAP_F_NO_CHANCE = 1 << 0
DECAP_F_SYN_NEEDS_LISTENER = 1 << 1


class VipKey(ctypes.Structure):
    _fields_ = [("addr", u32 * 4), ("port", u16), ("proto", u8), ("family", u8)]


class VipVal(ctypes.Structure):
    _fields_ = [("vip_id", u32), ("flags", u32)]


class Backend(ctypes.Structure):
    _fields_ = [
        ("addr", u32 * 4),
        ("family", u8),
        ("flags", u8),
        ("vip_flags", u8),
        ("pad", u8),
        ("gen", u32),
        ("vip_id", u32),
        ("weight", u16),  # as configured, capped at 65535 (the data plane does not read it)
        ("table_gen", u16),  # the owning VIP's table generation (FLOW_GEN_BITS of it)
    ]


class FlowKey(ctypes.Structure):
    _fields_ = [
        ("src", u32 * 4),
        ("dst", u32 * 4),
        ("sport", u16),
        ("dport", u16),
        ("proto", u8),
        ("admitted", u8 * 3),  # stored ways only: the ACL epoch that let the flow through
    ]


class FlowVal(ctypes.Structure):
    _fields_ = [("backend_id", u32), ("backend_gen", u32), ("touched", u64)]


class SessionWay(ctypes.Structure):
    _fields_ = [("key", FlowKey), ("val", FlowVal)]


class SessionSet(ctypes.Structure):
    _fields_ = [("tag", u32 * SESSION_WAYS), ("way", SessionWay * SESSION_WAYS)]


class SynMark(ctypes.Structure):
    """struct shoal_syn_mark: the last SYN hashed into a bucket of shoal_syn_marks_v1."""

    _fields_ = [("tag", u32), ("time", u32)]


class SessionGeom(ctypes.Structure):
    _fields_ = [("seed", u32), ("sets", u32), ("stripes", u32), ("shard_shift", u32)]


class Config(ctypes.Structure):
    _fields_ = [
        ("hash_seed", u32),
        ("flags", u32),
        ("udp_timeout", u64),
        ("flood_window", u64),
        ("flood_enter_rate", u64),
        ("flood_exit_rate", u64),
        ("flood_hold", u64),
        ("encap_src4", u32),
        ("encap_src4_mask", u32),
        ("encap_src6", u32 * 4),
        ("gw_mac", u8 * 6),
        ("gue_port", u16),
        ("mtu", u16),
        ("icmp_rate", u16),
        ("anyport_vips", u32),
        ("nh_epoch", u32),
        ("hz", u32),
        ("nh_max_age", u64),
        ("tcp_timeout", u64),
        ("tcp_closing_timeout", u64),
    ]


class FragKey(ctypes.Structure):
    _fields_ = [
        ("src", u32 * 4),
        ("dst", u32 * 4),
        ("id", u32),
        ("proto", u8),
        ("family", u8),
        ("pad", u16),
    ]


class FragVal(ctypes.Structure):
    _fields_ = [("backend_id", u32), ("backend_gen", u32)]


class IcmpRate(ctypes.Structure):
    _fields_ = [("window_start", u64), ("sent", u64)]


class Nexthop(ctypes.Structure):
    _fields_ = [
        ("dmac", u8 * 6),
        ("smac", u8 * 6),
        ("ifindex", u32),
        ("epoch", u32),
        ("filled", u64),
    ]


class FloodState(ctypes.Structure):
    _fields_ = [
        ("window_start", u64),
        ("window_flows", u64),
        ("calm_since", u64),
        ("last_rate", u64),
        ("entries", u64),
        ("exits", u64),
        ("changed", u64),
        ("last_flow", u64),
        ("mode", u32),
        ("pad", u32),
    ]


class Traffic(ctypes.Structure):
    _fields_ = [("packets", u64), ("bytes", u64)]


class Acl4Key(ctypes.Structure):
    _fields_ = [("prefixlen", u32), ("acl_id", u32), ("addr", u32)]


class Acl6Key(ctypes.Structure):
    _fields_ = [("prefixlen", u32), ("acl_id", u32), ("addr", u32 * 4)]


class Lpm4Key(ctypes.Structure):
    _fields_ = [("prefixlen", u32), ("addr", u32)]


class Lpm6Key(ctypes.Structure):
    _fields_ = [("prefixlen", u32), ("addr", u32 * 4)]


class DecapConfig(ctypes.Structure):
    _fields_ = [("gue_port", u16), ("flags", u16), ("pad2", u32)]


class Chance4(ctypes.Structure):
    """The IPv4 option after a 20-byte outer header (outer IHL 7)."""

    _fields_ = [("type", u8), ("len", u8), ("flags", u8), ("pad", u8), ("prev", u32)]


class Chance6(ctypes.Structure):
    """The IPv6 Destination Options header after the outer IPv6 header."""

    _fields_ = [
        ("nexthdr", u8),
        ("hdrlen", u8),
        ("padn_type", u8),
        ("padn_len", u8),
        ("type", u8),
        ("len", u8),
        ("flags", u8),
        ("pad", u8),
        ("prev", u32 * 4),
    ]


class DecapFeatures(ctypes.Structure):
    """struct shoal_decap_features: the decap program's .rodata.compat section."""

    _fields_ = [("adjust_room_decap_l3", u32)]


class Counter(enum.IntEnum):
    """enum shoal_counter: indices of shoal_counters_v2 (COUNTER_SLOTS entries). Append only."""

    PASS_NOT_IP = 0
    PASS_NOT_VIP = 1
    PASS_FRAGMENT = 2
    PASS_OTHER = 3
    TX = 4
    REDIRECT = 5
    DROP_NO_BACKEND = 6
    DROP_TOO_BIG = 7
    DROP_ENCAP = 8
    DROP_NO_ROUTE = 9
    CACHE_HIT = 10
    CACHE_MISS = 11
    CACHE_STALE = 12
    CACHE_EXPIRED = 13
    NEW_FLOWS = 14
    CACHE_INSERT = 15
    CACHE_SKIP_FLOOD = 16
    FIB_FALLBACK = 17
    PASS_NO_NEIGH = 18
    DROP_ACL = 19
    CACHE_CLOSING = 20
    CHANCE = 21
    ICMP_TOO_BIG = 22
    ICMP_FORWARDED = 23
    FRAG_FIRST = 24
    FRAG_FOLLOW = 25
    DROP_MALFORMED = 26
    CACHE_REUSED = 27


class DecapCounter(enum.IntEnum):
    """enum shoal_decap_counter. Append only."""

    IPIP = 0
    IP6IP = 1
    IP6IP6 = 2
    GUE4 = 3
    GUE6 = 4
    ERROR = 5
    PASS_FOREIGN_SRC = 6
    PASS_NOT_LOCAL = 7
    DROP_FRAGMENT = 8
    CHANCE_LOCAL = 9
    CHANCE_REDIRECT = 10
    CHANCE_LAST = 11
    CHANCE_ERROR = 12
    DROP_NO_LISTENER = 13
    CHANCE_FOREIGN = 14


# Map name -> (key type, value type, per-CPU). The names carry the layout version.
LB_MAPS: dict[str, tuple[type, type, bool]] = {
    "shoal_vips_v1": (VipKey, VipVal, False),
    "shoal_backends_v1": (u32, Backend, False),
    "shoal_sessions_v2": (u32, SessionSet, False),  # the flat layout (one entry if sharded)
    "shoal_session_geom_v1": (u32, SessionGeom, False),
    "shoal_syn_marks_v1": (u32, SynMark, False),
    "shoal_config_v2": (u32, Config, False),
    "shoal_flood_v1": (u32, FloodState, True),
    "shoal_counters_v2": (u32, u64, True),
    "shoal_vip_stats_v1": (u32, Traffic, True),
    "shoal_backend_stats_v1": (u32, Traffic, True),
    "shoal_nexthops_v1": (u32, Nexthop, True),
    "shoal_vip_filter_v1": (u32, u64, False),
    "shoal_acl_ids_v1": (u32, u32, False),
    "shoal_acl_words_v1": (u32, u32, False),
    "shoal_acl4_v1": (Acl4Key, u32, False),
    "shoal_acl6_v1": (Acl6Key, u32, False),
    "shoal_acl_drops_v1": (u32, u64, True),
    "shoal_frags_v1": (FragKey, FragVal, False),
    "shoal_icmp_rate_v1": (u32, IcmpRate, True),
}
# Maps of lb.bpf.o that the program itself never reads (Python keeps them for older programs),
# so they are not among an attached program's maps.
LB_MAPS_NOT_READ = frozenset({"shoal_acl_ids_v1"})
# Maglev table classes (SHOAL_MAGLEV_CLASSES): a table of one of these sizes lives in its
# class's maps (class i + 1 for size i), whose inner maps have exactly 1 + size entries; any
# other size is class 0 (shoal_maglev_v1, shoal_maglev_prev_v1). maglev.TABLE_SIZES.
MAGLEV_CLASS_SIZES = (251, 1021, 4093, 16381, 65537)
MAGLEV_CLASS_MAP = "shoal_mclass_v1"  # VIP id -> current class | previous class << 8
MCLASS_PREV_SHIFT = 8
_CLASSES = range(1, len(MAGLEV_CLASS_SIZES) + 1)
MAGLEV_CURRENT_MAPS = ("shoal_maglev_v1", *(f"shoal_mtab{c}_v1" for c in _CLASSES))
MAGLEV_PREVIOUS_MAPS = ("shoal_maglev_prev_v1", *(f"shoal_mprev{c}_v1" for c in _CLASSES))
# The maps of Maglev tables (outer maps: the current table per class, the one before the
# VIP's last change per class for second chance, and the class word), then the session shards.
TABLE_MAPS = (*MAGLEV_CURRENT_MAPS, *MAGLEV_PREVIOUS_MAPS, MAGLEV_CLASS_MAP, SESSIONS_MAP)
DECAP_MAPS: dict[str, tuple[type, type, bool]] = {
    "shoal_decap_config_v1": (u32, DecapConfig, False),
    "shoal_decap_counters_v2": (u32, u64, True),
    "shoal_decap_src4_v1": (Lpm4Key, u32, False),
    "shoal_decap_src6_v1": (Lpm6Key, u32, False),
    "shoal_decap_vip4_v1": (Lpm4Key, u32, False),
    "shoal_decap_vip6_v1": (Lpm6Key, u32, False),
    "shoal_decap_peer4_v1": (Lpm4Key, u32, False),
    "shoal_decap_peer6_v1": (Lpm6Key, u32, False),
}
