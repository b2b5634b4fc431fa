/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Maps of the backend-side decapsulation program. */
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

/* Decapsulated packets per kind, indexed by enum shoal_decap_counter. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SHOAL_DECAP_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_decap_counters_v1 SEC(".maps");

#endif /* SHOAL_DECAP_MAPS_H */
