// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Baselines measured in the same run as the load balancer: the cost floor of an XDP program
 * (XDP_PASS), a bounce that sends each frame back (XDP_TX with MACs swapped), and the bare cost
 * of a session-cache write. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include "shoal_abi.h"

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
