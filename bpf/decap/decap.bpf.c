// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Backend-side decapsulation at tc ingress, for hosts without the ipip/fou modules. Strips the
 * outer header the load balancer added (IPIP, IPv4/IPv6 in IPv6, GUE in either family) so the
 * kernel delivers the inner packet to the VIP held on the loopback, and the reply goes straight
 * to the client (DSR). Every other packet passes untouched. */
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include "lib/consts.h"
#include "shoal_abi.h"
#include "decap_maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void decap_count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&shoal_decap_counters_v1, &idx);
	if (c)
		*c += 1;
}

/* Removes len bytes after the Ethernet header; the inner packet is IPv4 or IPv6 (inner_v6). */
static __always_inline int decap_strip(struct __sk_buff *skb, __u32 len, int outer_v6,
				       int inner_v6, __u32 counter)
{
	__u64 flags = 0;
	if (outer_v6 != inner_v6)
		flags = inner_v6 ? BPF_F_ADJ_ROOM_DECAP_L3_IPV6 : BPF_F_ADJ_ROOM_DECAP_L3_IPV4;
	if (bpf_skb_adjust_room(skb, -(__s32)len, BPF_ADJ_ROOM_MAC, flags)) {
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

/* GUE variant 1: the inner IP version is the first nibble after the UDP header. */
static __always_inline int decap_gue(struct __sk_buff *skb, struct udphdr *uh, void *data_end,
				     __u32 outer_len, int outer_v6)
{
	__u32 zero = 0;
	struct shoal_decap_config *cfg = bpf_map_lookup_elem(&shoal_decap_config_v1, &zero);
	if (!cfg || !cfg->gue_port || uh->dest != cfg->gue_port)
		return TC_ACT_OK;
	__u8 *inner = (__u8 *)(uh + 1);
	if ((void *)(inner + 1) > data_end)
		return TC_ACT_OK;
	__u8 version = *inner >> 4;
	if (version != 4 && version != 6)
		return TC_ACT_OK;
	return decap_strip(skb, outer_len + UDP_HLEN, outer_v6, version == 6,
			   outer_v6 ? SHOAL_DECAP_GUE6 : SHOAL_DECAP_GUE4);
}

SEC("tc")
int shoal_decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return TC_ACT_OK;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);
		if ((void *)(iph + 1) > data_end)
			return TC_ACT_OK;
		__u32 hlen = iph->ihl * 4;
		if (iph->protocol == IPPROTO_IPIP)
			return decap_strip(skb, hlen, 0, 0, SHOAL_DECAP_IPIP);
		if (iph->protocol == IPPROTO_UDP && hlen == IPV4_HLEN) {
			struct udphdr *uh = (void *)(iph + 1);
			if ((void *)(uh + 1) > data_end)
				return TC_ACT_OK;
			return decap_gue(skb, uh, data_end, IPV4_HLEN, 0);
		}
		return TC_ACT_OK;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = (void *)(eth + 1);
		if ((void *)(ip6h + 1) > data_end)
			return TC_ACT_OK;
		if (ip6h->nexthdr == IPPROTO_IPIP)
			return decap_strip(skb, IPV6_HLEN, 1, 0, SHOAL_DECAP_IP6IP);
		if (ip6h->nexthdr == IPPROTO_IPV6)
			return decap_strip(skb, IPV6_HLEN, 1, 1, SHOAL_DECAP_IP6IP6);
		if (ip6h->nexthdr == IPPROTO_UDP) {
			struct udphdr *uh = (void *)(ip6h + 1);
			if ((void *)(uh + 1) > data_end)
				return TC_ACT_OK;
			return decap_gue(skb, uh, data_end, IPV6_HLEN, 1);
		}
	}
	return TC_ACT_OK;
}
