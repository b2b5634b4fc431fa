// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Baselines measured in the same run as the load balancer: the cost floor of an XDP program
 * (XDP_PASS), a bounce that sends each frame back (XDP_TX with MACs swapped), and the bare cost
 * of a session-cache write. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include "shoal_abi.h"
#include "lib/flowhash.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int shoal_trivial(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int shoal_bounce(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	unsigned char tmp[ETH_ALEN];
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return XDP_TX;
}

/* The kernel's own cost of writing one session entry: an LRU hash with the session cache's
 * key and value sizes and per-CPU lists, keyed by 40 bytes of the frame. Benchmarks subtract
 * the floor from it to show how much of a new flow's cost is the map update itself. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct shoal_flow_key);
	__type(value, struct shoal_flow_val);
} shoal_lru_probe_map SEC(".maps");

SEC("xdp")
int shoal_lru_insert(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct shoal_flow_key key;
	struct shoal_flow_val val = {};
	if (data + 14 + sizeof(key) > data_end)
		return XDP_DROP;
	__builtin_memcpy(&key, data + 14, sizeof(key));
	bpf_map_update_elem(&shoal_lru_probe_map, &key, &val, BPF_ANY);
	return XDP_PASS;
}

/* A yardstick for a session table that needs no LRU insert: a set-associative table in plain
 * array memory, striped per CPU (no locks), PROBE_WAYS ways a set. An insert hashes the key,
 * finds its set with one array lookup, and overwrites the matching way or else the oldest one.
 * Same key and value sizes and total entries as shoal_lru_probe_map, so the two rows compare. */
#define PROBE_WAYS 4
#define PROBE_CPUS 2
#define PROBE_SETS ((1 << 20) / PROBE_WAYS / PROBE_CPUS)

struct probe_set {
	struct shoal_flow_key key[PROBE_WAYS];
	struct shoal_flow_val val[PROBE_WAYS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PROBE_SETS * PROBE_CPUS);
	__type(key, __u32);
	__type(value, struct probe_set);
} shoal_table_probe_map SEC(".maps");

static __always_inline int probe_key_eq(const struct shoal_flow_key *a,
					const struct shoal_flow_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	return !((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4]));
}

SEC("xdp")
int shoal_table_insert(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct shoal_flow_key key;
	if (data + 14 + sizeof(key) > data_end)
		return XDP_DROP;
	__builtin_memcpy(&key, data + 14, sizeof(key));
	__u32 idx = flow_hash(&key, 0, 0) % PROBE_SETS +
		    (bpf_get_smp_processor_id() % PROBE_CPUS) * PROBE_SETS;
	struct probe_set *set = bpf_map_lookup_elem(&shoal_table_probe_map, &idx);
	if (!set)
		return XDP_DROP;
	__u64 now = bpf_jiffies64();
	__u32 victim = 0;
	__u64 oldest = ~0ULL;
#pragma unroll
	for (__u32 w = 0; w < PROBE_WAYS; w++) {
		if (probe_key_eq(&set->key[w], &key)) {
			set->val[w].touched = now;
			return XDP_PASS;
		}
		if (set->val[w].touched < oldest) {
			oldest = set->val[w].touched;
			victim = w;
		}
	}
	if (victim >= PROBE_WAYS)
		return XDP_DROP;
	set->key[victim] = key;
	set->val[victim].backend_id = 0;
	set->val[victim].backend_gen = 0;
	set->val[victim].touched = now;
	return XDP_PASS;
}
