/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The flow an ICMP error quotes. A router that cannot deliver a VIP's reply (DSR: the backend
 * sent it with the VIP as source) sends the error to the VIP, quoting the reply's headers; the
 * flow is that quote reversed (client -> VIP), so the balancer finds the backend that owns it
 * exactly as for the flow's own packets. Only errors quoting a packet sent from the address the
 * error is addressed to count; echo and every other message are the kernel's. Included by
 * parse.h. */
#ifndef SHOAL_QUOTE_H
#define SHOAL_QUOTE_H

/* linux/icmp.h pulls in libc's socket headers, which do not build for BPF: the few values
 * needed (RFC 792, RFC 4443) are here. */
#define ICMP_HLEN 8
#define SHOAL_ICMP_DEST_UNREACH 3
#define SHOAL_ICMP_FRAG_NEEDED 4 /* code of SHOAL_ICMP_DEST_UNREACH */
#define SHOAL_ICMP_TIME_EXCEEDED 11
#define SHOAL_ICMP_PARAMETERPROB 12
#define SHOAL_ICMP6_DEST_UNREACH 1
#define SHOAL_ICMP6_PKT_TOOBIG 2
#define SHOAL_ICMP6_PARAMPROB 4

/* The common ICMP/ICMPv6 header; rest is the next-hop MTU for the too-big messages (16 bits
 * after 16 unused for IPv4, 32 bits for IPv6). */
struct shoal_icmphdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u32 rest;
};

static __always_inline int quote_is_l4(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP;
}

/* Reads the quoted ports (the first 4 bytes of TCP and UDP alike), swapped. */
static __always_inline int quote_ports(void *l4q, void *data_end, struct packet *pkt)
{
	__u16 *ports = l4q;
	if ((void *)(ports + 2) > data_end)
		return SHOAL_CNT_PASS_OTHER;
	pkt->flow.sport = ports[1];
	pkt->flow.dport = ports[0];
	pkt->icmp = 1;
	return PARSE_OK;
}

static __always_inline int quote_parse_icmp4(void *l4, __u32 l4_off, void *data_end,
					     struct packet *pkt)
{
	__u8 *ic = l4;
	if ((void *)(ic + ICMP_HLEN) > data_end)
		return SHOAL_CNT_PASS_OTHER;
	if (ic[0] != SHOAL_ICMP_DEST_UNREACH && ic[0] != SHOAL_ICMP_TIME_EXCEEDED &&
	    ic[0] != SHOAL_ICMP_PARAMETERPROB)
		return SHOAL_CNT_PASS_OTHER;
	struct iphdr *q = (void *)(ic + ICMP_HLEN);
	if ((void *)(q + 1) > data_end || q->version != 4 || q->ihl < 5)
		return SHOAL_CNT_PASS_OTHER;
	if (q->saddr != pkt->flow.dst[0] || !quote_is_l4(q->protocol) ||
	    (q->frag_off & bpf_htons(IP_OFFSET)))
		return SHOAL_CNT_PASS_OTHER;
	pkt->flow.src[0] = q->daddr;
	pkt->flow.proto = q->protocol;
	return quote_ports((void *)q + q->ihl * 4, data_end, pkt);
}

static __always_inline int quote_parse_icmp6(void *l4, __u32 l4_off, void *data_end,
					     struct packet *pkt)
{
	__u8 *ic = l4;
	if ((void *)(ic + ICMP_HLEN) > data_end)
		return SHOAL_CNT_PASS_OTHER;
	/* Destination unreachable, packet too big, time exceeded, parameter problem. */
	if (ic[0] < SHOAL_ICMP6_DEST_UNREACH || ic[0] > SHOAL_ICMP6_PARAMPROB)
		return SHOAL_CNT_PASS_OTHER;
	struct ipv6hdr *q = (void *)(ic + ICMP_HLEN);
	if ((void *)(q + 1) > data_end || q->version != 6 || !quote_is_l4(q->nexthdr))
		return SHOAL_CNT_PASS_OTHER;
	const __u32 *qs = q->saddr.in6_u.u6_addr32, *d = pkt->flow.dst;
	if ((qs[0] ^ d[0]) | (qs[1] ^ d[1]) | (qs[2] ^ d[2]) | (qs[3] ^ d[3]))
		return SHOAL_CNT_PASS_OTHER;
	__builtin_memcpy(pkt->flow.src, &q->daddr, 16);
	pkt->flow.proto = q->nexthdr;
	return quote_ports(q + 1, data_end, pkt);
}

#endif /* SHOAL_QUOTE_H */
