/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Packet parsing: Ethernet (up to two VLAN tags, 802.1Q or 802.1ad outer), IPv4 (options
 * allowed), IPv6 (a bounded chain of extension headers, lib/ipv6ext.h), fragments, TCP, UDP,
 * and the flow an ICMP error quotes (lib/quote.h). Every read is bounds-checked. The parser
 * only reads; a packet it does not fully understand is reported with a PASS counter and left
 * untouched, and one whose L4 header is malformed is reported as PARSE_MALFORMED so the caller
 * drops it when it is addressed to a VIP. */
#ifndef SHOAL_PARSE_H
#define SHOAL_PARSE_H

#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include "consts.h"
#include "shoal_abi.h"
#include "verifier.h"

/* packet.frag */
#define FRAG_NONE 0
#define FRAG_FIRST 1 /* offset 0, more fragments: carries the L4 header */
#define FRAG_LATER 2 /* offset > 0: no L4 header, ports unknown */

struct packet {
	struct shoal_flow_key flow;
	__u32 l3_len;   /* IP packet length from its header (excludes Ethernet padding) */
	__u32 frag_id;  /* IPv4 identification or IPv6 fragment identification, as on the wire */
	__u8 family;    /* 4 or 6 */
	__u8 vlan;      /* number of VLAN tags (0..2) before the IP header */
	__u8 tcp_flags; /* byte 13 of the TCP header; 0 for UDP */
	__u8 tos;       /* IPv4 TOS / IPv6 traffic class, copied to the outer header */
	__u8 frag;      /* FRAG_* */
	__u8 icmp;      /* 1: an ICMP error; flow is the flow it quotes, seen from the client */
	__u8 df;        /* IPv4 don't-fragment bit set (IPv6: always 1, routers never split) */
	__u8 pad;
};

#define PARSE_OK -1
#define PARSE_MALFORMED -2 /* ports known, L4 header inconsistent: dropped if for a VIP */

#include "ipv6ext.h"
#include "quote.h"

/* Returns PARSE_OK, PARSE_MALFORMED, or the SHOAL_CNT_PASS_* reason to leave the packet alone.
 * l4_off: offset of the L4 header in the IP packet; both it and l3_len are bounded scalars, so
 * the length checks need no pointer arithmetic with packet-controlled values. */
static __always_inline int parse_l4(void *l4, __u32 l4_off, void *data_end, struct packet *pkt)
{
	__u32 l3_len = pkt->l3_len;
	if (pkt->frag == FRAG_LATER)
		return PARSE_OK; /* ports come from the first fragment (lb/frag.h) */
	if (pkt->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		/* Fewer than 4 bytes: no ports, so no telling which VIP; the kernel's. */
		if ((void *)th + 4 > data_end || l4_off + 4 > l3_len)
			return SHOAL_CNT_PASS_OTHER;
		pkt->flow.sport = th->source;
		pkt->flow.dport = th->dest;
		if ((void *)(th + 1) > data_end || l4_off + sizeof(*th) > l3_len)
			return PARSE_MALFORMED;
		__u32 doff = ((__u8 *)th)[12] >> 4;
		if (doff < 5 || l4_off + doff * 4 > l3_len)
			return PARSE_MALFORMED;
		pkt->tcp_flags = ((__u8 *)th)[13];
		return PARSE_OK;
	}
	if (pkt->flow.proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;
		if ((void *)uh + 4 > data_end || l4_off + 4 > l3_len)
			return SHOAL_CNT_PASS_OTHER;
		pkt->flow.sport = uh->source;
		pkt->flow.dport = uh->dest;
		if ((void *)(uh + 1) > data_end || l4_off + sizeof(*uh) > l3_len)
			return PARSE_MALFORMED;
		__u32 ulen = ntohs_bounded(uh->len);
		/* A first fragment's UDP length covers the whole datagram, beyond this packet. */
		if (ulen < sizeof(*uh) || (pkt->frag == FRAG_NONE && l4_off + ulen > l3_len))
			return PARSE_MALFORMED;
		return PARSE_OK;
	}
	if (pkt->frag == FRAG_NONE) {
		if (pkt->flow.proto == IPPROTO_ICMP && pkt->family == 4)
			return quote_parse_icmp4(l4, l4_off, data_end, pkt);
		if (pkt->flow.proto == IPPROTO_ICMPV6 && pkt->family == 6)
			return quote_parse_icmp6(l4, l4_off, data_end, pkt);
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
	/* The length from the header, not the frame: Ethernet padding must not enter the tunnel. */
	__u32 len = ntohs_bounded(iph->tot_len);
	__u32 hlen = iph->ihl * 4;
	if (len < hlen || l3 + len > data_end)
		return SHOAL_CNT_PASS_OTHER;
	if (iph->frag_off & bpf_htons(IP_OFFSET))
		pkt->frag = FRAG_LATER;
	else if (iph->frag_off & bpf_htons(IP_MF))
		pkt->frag = FRAG_FIRST;
	pkt->frag_id = iph->id;
	pkt->df = !!(iph->frag_off & bpf_htons(IP_DF));
	pkt->l3_len = len;
	pkt->family = 4;
	pkt->tos = iph->tos;
	pkt->flow.src[0] = iph->saddr;
	pkt->flow.dst[0] = iph->daddr;
	pkt->flow.proto = iph->protocol;
	/* Options are allowed: they travel inside the tunnel untouched. */
	return parse_l4(l3 + hlen, hlen, data_end, pkt);
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
	pkt->df = 1;
	pkt->tos = (ip6h->priority << 4) | (ip6h->flow_lbl[0] >> 4);
	__builtin_memcpy(pkt->flow.src, &ip6h->saddr, 16);
	__builtin_memcpy(pkt->flow.dst, &ip6h->daddr, 16);
	pkt->flow.proto = ip6h->nexthdr;
	__u32 l4_off = IPV6_HLEN;
	int rc = ipv6_skip_ext(l3, data_end, pkt, &l4_off);
	if (rc != PARSE_OK)
		return rc;
	return parse_l4(l3 + l4_off, l4_off, data_end, pkt);
}

/* Fills pkt from the frame. pkt must be zeroed by the caller (the flow key is hashed whole). */
static __always_inline int parse_packet(void *data, void *data_end, struct packet *pkt)
{
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	if (l3 > data_end)
		return SHOAL_CNT_PASS_NOT_IP;
	__u16 proto = eth->h_proto;
	/* QinQ: an 802.1ad (or 802.1Q) outer tag, then an 802.1Q inner one. */
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		__u16 *inner = l3 + 2;
		if ((void *)(inner + 1) > data_end)
			return SHOAL_CNT_PASS_NOT_IP;
		proto = *inner;
		l3 += VLAN_HLEN;
		pkt->vlan++;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(l3, data_end, pkt);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(l3, data_end, pkt);
	return SHOAL_CNT_PASS_NOT_IP;
}

#endif /* SHOAL_PARSE_H */
