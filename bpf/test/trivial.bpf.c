// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Baselines measured in the same run as the load balancer: the cost floor of an XDP program
 * (XDP_PASS) and a bounce that sends each frame back (XDP_TX with MACs swapped). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

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
