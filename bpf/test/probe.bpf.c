// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Test probe: parses a frame with the load balancer's own parser and returns the flow hash as
 * the program's return value, so tests can compare it with the Python implementation through
 * BPF_PROG_TEST_RUN. Never attached to an interface. */
#include "lib/consts.h"
#include "lib/flowhash.h"
#include "lib/parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* [0] = seed, [1] = 1 to hash the source address only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} shoal_probe_args SEC(".maps");

SEC("xdp")
int shoal_probe_hash(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct packet pkt = {};
	__u32 k0 = 0, k1 = 1;
	if (parse_packet(data, data_end, &pkt) != PARSE_OK)
		return 0;
	__u32 *seed = bpf_map_lookup_elem(&shoal_probe_args, &k0);
	__u32 *src_only = bpf_map_lookup_elem(&shoal_probe_args, &k1);
	if (!seed || !src_only)
		return 0;
	return flow_hash(&pkt.flow, *seed, *src_only);
}
