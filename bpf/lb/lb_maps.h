/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Maps of the XDP load balancer. All are pinned by name, so a reload or an upgrade of the
 * program keeps VIPs, tables, sessions and counters. A layout change bumps the _vN suffix. */
#ifndef SHOAL_LB_MAPS_H
#define SHOAL_LB_MAPS_H

#include "lib/consts.h"
#include "shoal_abi.h"

/* (VIP address, port, protocol) -> VIP id and flags. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHOAL_MAX_VIPS);
	__type(key, struct shoal_vip_key);
	__type(value, struct shoal_vip_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_vips_v1 SEC(".maps");

/* Bitmap of VIP addresses (see SHOAL_VIP_FILTER_*), one u64 word per entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SHOAL_VIP_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_vip_filter_v1 SEC(".maps");

/* A VIP's Maglev table: slot 0 holds the table size M, slots 1..M the backend ids. Keeping the
 * size inside the table makes a swap of the whole inner map atomic. Tables of a class size
 * (shoal_abi.h) live in that class's maps below; these hold tables of any other size. */
struct shoal_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP); /* inner maps of any size */
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
};

/* VIP id -> its Maglev table (an inner map swapped in whole). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, SHOAL_MAX_VIPS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct shoal_maglev_inner);
} shoal_maglev_v1 SEC(".maps");

/* VIP id -> the Maglev table before its last change (second chance, lb/chance.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, SHOAL_MAX_VIPS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct shoal_maglev_inner);
} shoal_maglev_prev_v1 SEC(".maps");

/* One class's current (shoal_mtabN_v1) and previous (shoal_mprevN_v1) tables: inner maps of
 * exactly 1 + size entries and no BPF_F_INNER_MAP, so the verifier knows the inner map at
 * every lookup. The names fit the kernel's 15 characters. */
#define SHOAL_MAGLEV_CLASS_MAPS(cls, size)                                                   \
	struct shoal_mtab##cls##_inner {                                                     \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                            \
		__uint(max_entries, 1 + (size));                                             \
		__type(key, __u32);                                                          \
		__type(value, __u32);                                                        \
	};                                                                                   \
	struct {                                                                             \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);                                    \
		__uint(max_entries, SHOAL_MAX_VIPS);                                         \
		__type(key, __u32);                                                          \
		__uint(pinning, LIBBPF_PIN_BY_NAME);                                         \
		__array(values, struct shoal_mtab##cls##_inner);                             \
	} shoal_mtab##cls##_v1 SEC(".maps");                                                 \
	struct {                                                                             \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);                                    \
		__uint(max_entries, SHOAL_MAX_VIPS);                                         \
		__type(key, __u32);                                                          \
		__uint(pinning, LIBBPF_PIN_BY_NAME);                                         \
		__array(values, struct shoal_mtab##cls##_inner);                             \
	} shoal_mprev##cls##_v1 SEC(".maps");

SHOAL_MAGLEV_CLASSES(SHOAL_MAGLEV_CLASS_MAPS)

/* VIP id -> the classes of its current and previous tables (shoal_abi.h). Python stores a
 * table in its class's map before this word names the class, and deletes it from the old
 * class only after: a packet finds a whole table whichever word it reads. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SHOAL_MAX_VIPS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_mclass_v1 SEC(".maps");

/* Backend id -> address, state and generation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SHOAL_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct shoal_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_backends_v1 SEC(".maps");

/* Session cache: sets of flows, one stripe per CPU (lb/session.h), in one of two layouts
 * (shoal_abi.h; the program's is fixed in .rodata). Sharded: shards of
 * 1 << SHOAL_SESSION_SHARD_SHIFT sets in shoal_session_shards_v1, each small enough for the
 * kernel's direct map; Python sizes the outer map before load and creates the shards. The
 * inner size is fixed so that the verifier inlines both lookups (a helper call costs a
 * protected return on CPUs that need one). Flat: every set in shoal_sessions_v2, for kernels
 * that store each shard with its own RCU wait (before 6.8). The layout not in use gets one
 * entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SHOAL_DEFAULT_SESSIONS / SHOAL_SESSION_WAYS);
	__type(key, __u32);
	__type(value, struct shoal_session_set);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_sessions_v2 SEC(".maps");

struct shoal_session_shard {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << SHOAL_SESSION_SHARD_SHIFT);
	/* Sizes, not types: clang leaves a struct reached only through an inner map's
	 * definition a forward declaration, and libbpf cannot size that. */
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct shoal_session_set));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct shoal_session_shard);
} shoal_session_shards_v1 SEC(".maps");

/* The session cache's geometry and set-hash seed. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shoal_session_geom);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_session_geom_v1 SEC(".maps");

/* Node-wide settings, written by Python. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shoal_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_config_v2 SEC(".maps");

/* Per-CPU new-flow rate and flood mode. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shoal_flood_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_flood_v1 SEC(".maps");

/* Verdicts, cache and flood events, indexed by enum shoal_counter. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SHOAL_CNT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_counters_v2 SEC(".maps");

/* Packets and bytes per VIP id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SHOAL_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct shoal_traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_vip_stats_v1 SEC(".maps");

/* Packets and bytes per backend id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SHOAL_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct shoal_traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_backend_stats_v1 SEC(".maps");

/* Backend id -> its cached next hop, per CPU (no torn MACs, no cross-CPU cache lines). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SHOAL_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct shoal_nexthop);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_nexthops_v1 SEC(".maps");

/* VIP id -> the ACL id its allowed prefixes are stored under, 2 * vip_id or 2 * vip_id + 1.
 * Not read here: Python keeps it for programs before shoal_acl_words_v1 (a downgrade), and as
 * the record of which id is in force. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SHOAL_MAX_VIPS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_acl_ids_v1 SEC(".maps");

/* VIP id -> its ACL word (read only for VIPs with SHOAL_VIP_F_ACL): its list is stored under
 * ACL id 2 * vip_id + (word & 1). Python fills the other id, then moves the word on to the
 * next value of the other parity: a new list takes effect for the whole VIP at once, and the
 * word never takes a value twice, so a session way that records it (shoal_flow_key.admitted)
 * knows whether the list that let it through is still in force. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SHOAL_MAX_VIPS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_acl_words_v1 SEC(".maps");

/* Allowed IPv4 client prefixes per ACL id; the value is unused (1): presence is the answer. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SHOAL_MAX_ACL_PREFIXES);
	__type(key, struct shoal_acl4_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_acl4_v1 SEC(".maps");

/* Allowed IPv6 client prefixes per ACL id. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SHOAL_MAX_ACL_PREFIXES);
	__type(key, struct shoal_acl6_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_acl6_v1 SEC(".maps");

/* Packets dropped by the ACL, per VIP id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SHOAL_MAX_VIPS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_acl_drops_v1 SEC(".maps");

/* Fragment -> the backend of its datagram's first fragment (lb/frag.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SHOAL_FRAG_ENTRIES);
	__type(key, struct shoal_frag_key);
	__type(value, struct shoal_frag_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_frags_v1 SEC(".maps");

/* Per-CPU budget of too-big replies (lb/icmp.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shoal_icmp_rate);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_icmp_rate_v1 SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&shoal_counters_v2, &idx);
	if (c)
		*c += 1;
}

static __always_inline void count_traffic(void *map, __u32 idx, __u32 bytes)
{
	struct shoal_traffic *t = bpf_map_lookup_elem(map, &idx);
	if (t) {
		t->packets += 1;
		t->bytes += bytes;
	}
}

#endif /* SHOAL_LB_MAPS_H */
