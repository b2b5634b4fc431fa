/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Maps of the backend-side decapsulation program. Empty prefix tries decapsulate nothing:
 * the program only strips what Python configured it to expect. */
#ifndef SHOAL_DECAP_MAPS_H
#define SHOAL_DECAP_MAPS_H

#include "lib/consts.h"
#include "shoal_abi.h"

/* The single decap setting: which UDP port carries GUE. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shoal_decap_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_decap_config_v1 SEC(".maps");

/* Decap verdicts per kind, indexed by enum shoal_decap_counter. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SHOAL_DECAP_CNT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_decap_counters_v2 SEC(".maps");

/* Outer IPv4 sources a tunnel may come from (the L4 tier's encapsulation sources).
 * The value is unused (1): presence is the answer. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SHOAL_DECAP_MAX_PREFIXES);
	__type(key, struct shoal_lpm4_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_decap_src4_v1 SEC(".maps");

/* Outer IPv6 sources a tunnel may come from. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SHOAL_DECAP_MAX_PREFIXES);
	__type(key, struct shoal_lpm6_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_decap_src6_v1 SEC(".maps");

/* Inner IPv4 destinations this host serves (its VIPs, or the VIP pool it holds on lo). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SHOAL_DECAP_MAX_PREFIXES);
	__type(key, struct shoal_lpm4_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_decap_vip4_v1 SEC(".maps");

/* Inner IPv6 destinations this host serves. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SHOAL_DECAP_MAX_PREFIXES);
	__type(key, struct shoal_lpm6_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_decap_vip6_v1 SEC(".maps");

/* IPv4 addresses a packet may be sent on to (second chance): the other backends and L7 nodes.
 * A previous owner outside them is ignored, so a forged tunnel cannot make a backend relay. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SHOAL_DECAP_MAX_PREFIXES);
	__type(key, struct shoal_lpm4_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_decap_peer4_v1 SEC(".maps");

/* IPv6 addresses a packet may be sent on to. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SHOAL_DECAP_MAX_PREFIXES);
	__type(key, struct shoal_lpm6_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_decap_peer6_v1 SEC(".maps");

static __always_inline void decap_count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&shoal_decap_counters_v2, &idx);
	if (c)
		*c += 1;
}

/* 1 when addr (IPv4 in addr[0], network order) lies in a prefix of the trie for its family. */
static __always_inline int decap_in_prefixes(void *trie4, void *trie6, const __u32 *addr, int v6)
{
	if (v6) {
		struct shoal_lpm6_key k6 = {.prefixlen = 128};
		__builtin_memcpy(k6.addr, addr, 16);
		return bpf_map_lookup_elem(trie6, &k6) != NULL;
	}
	struct shoal_lpm4_key k4 = {.prefixlen = 32, .addr = addr[0]};
	return bpf_map_lookup_elem(trie4, &k4) != NULL;
}

#endif /* SHOAL_DECAP_MAPS_H */
