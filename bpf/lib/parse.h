/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Packet parsing: Ethernet (one 802.1Q tag), IPv4 (options allowed), IPv6, TCP, UDP.
 * Every read is bounds-checked. The parser only reads; a packet it does not fully
 * understand is reported with a PASS counter and left untouched. */
#ifndef SHOAL_PARSE_H
#define SHOAL_PARSE_H

#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include "consts.h"
#include "shoal_abi.h"
#include "verifier.h"

struct packet {
	struct shoal_flow_key flow;
	__u32 l3_len;   /* IP packet length from its header (excludes Ethernet padding) */
	__u8 family;    /* 4 or 6 */
	__u8 vlan;      /* 1 when one 802.1Q tag precedes the IP header */
	__u8 tcp_flags; /* byte 13 of the TCP header; 0 for UDP */
	__u8 tos;       /* IPv4 TOS / IPv6 traffic class, copied to the outer header */
};

#define PARSE_OK -1

/* Returns PARSE_OK, or the SHOAL_CNT_PASS_* reason to leave the packet alone. */
/* ip_end: end of the IP packet by its own length field; the L4 header must lie before it. */
static __always_inline int parse_l4(void *l4, void *ip_end, void *data_end, struct packet *pkt)
{
	if (pkt->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > data_end || (void *)(th + 1) > ip_end)
			return SHOAL_CNT_PASS_OTHER;
		pkt->flow.sport = th->source;
		pkt->flow.dport = th->dest;
		pkt->tcp_flags = ((__u8 *)th)[13];
		return PARSE_OK;
	}
	if (pkt->flow.proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > data_end || (void *)(uh + 1) > ip_end)
			return SHOAL_CNT_PASS_OTHER;
		pkt->flow.sport = uh->source;
		pkt->flow.dport = uh->dest;
		return PARSE_OK;
	}
	return SHOAL_CNT_PASS_OTHER;
}

static __always_inline int parse_ipv4(void *l3, void *data_end, struct packet *pkt)
{
	struct iphdr *iph = l3;
	if ((void *)(iph + 1) > data_end)
		return SHOAL_CNT_PASS_OTHER;
	if (iph->version != 4 || iph->ihl < 5)
		return SHOAL_CNT_PASS_OTHER;
	if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return SHOAL_CNT_PASS_FRAGMENT;
	/* The length from the header, not the frame: Ethernet padding must not enter the tunnel. */
	__u32 len = ntohs_bounded(iph->tot_len);
	if (len < iph->ihl * 4 || l3 + len > data_end)
		return SHOAL_CNT_PASS_OTHER;
	pkt->l3_len = len;
	pkt->family = 4;
	pkt->tos = iph->tos;
	pkt->flow.src[0] = iph->saddr;
	pkt->flow.dst[0] = iph->daddr;
	pkt->flow.proto = iph->protocol;
	/* Options are allowed: they travel inside the tunnel untouched. */
	return parse_l4(l3 + iph->ihl * 4, l3 + len, data_end, pkt);
}

static __always_inline int parse_ipv6(void *l3, void *data_end, struct packet *pkt)
{
	struct ipv6hdr *ip6h = l3;
	if ((void *)(ip6h + 1) > data_end)
		return SHOAL_CNT_PASS_OTHER;
	if (ip6h->version != 6)
		return SHOAL_CNT_PASS_OTHER;
	__u32 len = IPV6_HLEN + ntohs_bounded(ip6h->payload_len);
	if (l3 + len > data_end)
		return SHOAL_CNT_PASS_OTHER;
	pkt->l3_len = len;
	pkt->family = 6;
	pkt->tos = (ip6h->priority << 4) | (ip6h->flow_lbl[0] >> 4);
	__builtin_memcpy(pkt->flow.src, &ip6h->saddr, 16);
	__builtin_memcpy(pkt->flow.dst, &ip6h->daddr, 16);
	/* Extension headers (fragments included) are not VIP traffic we balance. */
	pkt->flow.proto = ip6h->nexthdr;
	return parse_l4(ip6h + 1, l3 + len, data_end, pkt);
}

/* Fills pkt from the frame. pkt must be zeroed by the caller (the flow key is hashed whole). */
static __always_inline int parse_packet(void *data, void *data_end, struct packet *pkt)
{
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	if (l3 > data_end)
		return SHOAL_CNT_PASS_NOT_IP;
	__u16 proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		__u16 *inner = l3 + 2;
		if ((void *)(inner + 1) > data_end)
			return SHOAL_CNT_PASS_NOT_IP;
		proto = *inner;
		l3 += VLAN_HLEN;
		pkt->vlan = 1;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(l3, data_end, pkt);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(l3, data_end, pkt);
	return SHOAL_CNT_PASS_NOT_IP;
}

#endif /* SHOAL_PARSE_H */
