// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Backend-side decapsulation at tc ingress, for hosts without the ipip/fou modules. Strips the
 * outer header the load balancer added (IPIP, IPv4/IPv6 in IPv6, GUE in either family) so the
 * kernel delivers the inner packet to the VIP held on the loopback, and the reply goes straight
 * to the client (DSR).
 *
 * Only what it should: a tunnel from outside the configured L4 source prefixes, or whose inner
 * destination is no VIP of this host, passes to the kernel untouched (and is counted), so the
 * backend is never a relay into its own network. Outer fragments are dropped: the L4 tier sets
 * DF, so a fragment is never ours, and stripping one would mangle it. Every other packet passes
 * untouched. A packet that carries its flow's previous owner and has no socket here is sent on
 * to that owner instead (second chance, redirect.h). */
#include <linux/pkt_cls.h>
#include "lib/consts.h"
#include "shoal_abi.h"
#include "decap_maps.h"
#include "tunnel.h"
#include "redirect.h"
#include "compat.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Removes len bytes after the Ethernet header; the inner packet is IPv4 or IPv6 (inner_v6). */
static __always_inline int decap_strip(struct __sk_buff *skb, __u32 len, int outer_v6,
				       int inner_v6, __u32 counter)
{
	long rc = outer_v6 == inner_v6
			  ? bpf_skb_adjust_room(skb, -(__s32)len, BPF_ADJ_ROOM_MAC, 0)
			  : decap_strip_other_family(skb, len, inner_v6);
	if (rc) {
		decap_count(SHOAL_DECAP_ERROR);
		return TC_ACT_SHOT;
	}
	if (outer_v6 != inner_v6) {
		__u16 proto = bpf_htons(inner_v6 ? ETH_P_IPV6 : ETH_P_IP);
		bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto), 0);
	}
	decap_count(counter);
	return TC_ACT_OK;
}

SEC("tc")
int shoal_decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 zero = 0;
	struct shoal_decap_config *cfg = bpf_map_lookup_elem(&shoal_decap_config_v1, &zero);
	struct tunnel t = {};

	if (!tunnel_parse(data, data_end, cfg ? cfg->gue_port : 0, &t))
		return TC_ACT_OK;
	if (!decap_in_prefixes(&shoal_decap_src4_v1, &shoal_decap_src6_v1, t.src, t.outer_v6)) {
		decap_count(SHOAL_DECAP_PASS_FOREIGN_SRC);
		return TC_ACT_OK;
	}
	if (t.fragment) {
		decap_count(SHOAL_DECAP_DROP_FRAGMENT);
		return TC_ACT_SHOT;
	}
	if (!t.inner_ok ||
	    !decap_in_prefixes(&shoal_decap_vip4_v1, &shoal_decap_vip6_v1, t.dst, t.inner_v6)) {
		decap_count(SHOAL_DECAP_PASS_NOT_LOCAL);
		return TC_ACT_OK;
	}
	/* Second chance, and SYNs nobody listens for (redirect.h). */
	int verdict = redirect_decide(skb, &t, cfg);
	if (verdict != REDIRECT_DELIVER)
		return verdict;
	return decap_strip(skb, t.strip, t.outer_v6, t.inner_v6, t.counter);
}
