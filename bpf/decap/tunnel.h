/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Recognising a tunnel the load balancer makes (IPIP, IPv4/IPv6 in IPv6, GUE in either family)
 * and reading what the decap program decides on: outer source, fragment or not, inner
 * destination. Only reads; every read is bounds-checked. */
#ifndef SHOAL_DECAP_TUNNEL_H
#define SHOAL_DECAP_TUNNEL_H

#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include "lib/consts.h"
#include "shoal_abi.h"

#define IP6_FRAG_OFFSET 0xFFF8 /* offset bits of the fragment header's frag_off */

/* The IPv6 fragment extension header (RFC 8200, 4.5); the uapi headers lack it. */
struct tunnel_ip6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__u16 frag_off; /* offset << 3 | M flag, network byte order */
	__u32 ident;
};

/* A frame's tunnel, as far as the outer header and the inner one (when present) tell. */
struct tunnel {
	__u32 src[4];   /* outer source; IPv4 in src[0] */
	__u32 dst[4];   /* inner destination (valid when inner_ok); IPv4 in dst[0] */
	__u32 strip;    /* bytes after the Ethernet header to remove: outer IP (+ UDP for GUE) */
	__u32 counter;  /* SHOAL_DECAP_* counted when stripped */
	__u8 outer_v6;  /* outer header is IPv6 */
	__u8 inner_v6;  /* inner packet is IPv6 */
	__u8 fragment;  /* outer header is a fragment (any part of one) */
	__u8 inner_ok;  /* a whole inner IP header of the expected version follows */
	__u16 chance_off; /* frame offset of the second-chance option (shoal_abi.h); 0 = none */
	__u16 pad;
};

static __always_inline void tunnel_read_inner(void *inner, void *data_end, struct tunnel *t)
{
	if (t->inner_v6) {
		struct ipv6hdr *i6 = inner;
		if ((void *)(i6 + 1) > data_end || i6->version != 6)
			return;
		__builtin_memcpy(t->dst, &i6->daddr, 16);
	} else {
		struct iphdr *i4 = inner;
		if ((void *)(i4 + 1) > data_end || i4->version != 4)
			return;
		t->dst[0] = i4->daddr;
	}
	t->inner_ok = 1;
}

/* GUE variant 1: the inner IP version is the first nibble after the UDP header. Returns 0 when
 * the payload is no IP packet (not ours: left alone). */
static __always_inline int tunnel_gue(struct udphdr *uh, void *data_end, __u16 gue_port,
				      struct tunnel *t)
{
	if ((void *)(uh + 1) > data_end || !gue_port || uh->dest != gue_port)
		return 0;
	__u8 *inner = (__u8 *)(uh + 1);
	if ((void *)(inner + 1) > data_end)
		return 0;
	__u8 version = *inner >> 4;
	if (version != 4 && version != 6)
		return 0;
	t->inner_v6 = version == 6;
	t->strip += UDP_HLEN;
	t->counter = t->outer_v6 ? SHOAL_DECAP_GUE6 : SHOAL_DECAP_GUE4;
	tunnel_read_inner(inner, data_end, t);
	return 1;
}

static __always_inline int tunnel_parse4(struct iphdr *iph, void *data_end, __u16 gue_port,
					 struct tunnel *t)
{
	if ((void *)(iph + 1) > data_end || iph->ihl < 5)
		return 0;
	__u32 hlen = iph->ihl * 4;
	t->src[0] = iph->saddr;
	t->fragment = (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;
	t->strip = hlen;
	/* The second-chance option is the only option the L4 tier writes. */
	struct shoal_chance4 *c4 = (void *)(iph + 1);
	if (hlen == IPV4_HLEN + sizeof(*c4) && (void *)(c4 + 1) <= data_end &&
	    c4->type == SHOAL_CHANCE_OPT4 && c4->len == sizeof(*c4))
		t->chance_off = sizeof(struct ethhdr) + IPV4_HLEN;
	if (iph->protocol == IPPROTO_IPIP) {
		t->counter = SHOAL_DECAP_IPIP;
		tunnel_read_inner((void *)iph + hlen, data_end, t);
		return 1;
	}
	/* A later UDP fragment has no UDP header: nothing tells GUE from other traffic. */
	if (iph->protocol != IPPROTO_UDP || (hlen != IPV4_HLEN && !t->chance_off) ||
	    (iph->frag_off & bpf_htons(IP_OFFSET)))
		return 0;
	return tunnel_gue((void *)iph + (t->chance_off ? IPV4_HLEN + sizeof(*c4) : IPV4_HLEN),
			  data_end, gue_port, t);
}

static __always_inline int tunnel_parse6(struct ipv6hdr *ip6h, void *data_end, __u16 gue_port,
					 struct tunnel *t)
{
	if ((void *)(ip6h + 1) > data_end)
		return 0;
	__builtin_memcpy(t->src, &ip6h->saddr, 16);
	t->outer_v6 = 1;
	t->strip = IPV6_HLEN;
	__u8 next = ip6h->nexthdr;
	void *l4 = ip6h + 1;
	/* The second-chance Destination Options header, exactly as the L4 tier writes it; other
	 * extension headers are not ours. */
	if (next == IPPROTO_DSTOPTS) {
		struct shoal_chance6 *c6 = l4;
		if ((void *)(c6 + 1) > data_end || c6->hdrlen != sizeof(*c6) / 8 - 1 ||
		    c6->type != SHOAL_CHANCE_OPT6 || c6->len != sizeof(*c6) - 6)
			return 0;
		t->chance_off = sizeof(struct ethhdr) + IPV6_HLEN;
		next = c6->nexthdr;
		l4 = c6 + 1;
		t->strip += sizeof(*c6);
	}
	if (next == IPPROTO_FRAGMENT) {
		struct tunnel_ip6_frag *fh = l4;
		if ((void *)(fh + 1) > data_end)
			return 0;
		t->fragment = 1;
		next = fh->nexthdr;
		if (next == IPPROTO_UDP && (fh->frag_off & bpf_htons(IP6_FRAG_OFFSET)))
			return 0;
		l4 = fh + 1;
		t->strip += sizeof(*fh);
	}
	if (next == IPPROTO_IPIP || next == IPPROTO_IPV6) {
		t->inner_v6 = next == IPPROTO_IPV6;
		t->counter = t->inner_v6 ? SHOAL_DECAP_IP6IP6 : SHOAL_DECAP_IP6IP;
		tunnel_read_inner(l4, data_end, t);
		return 1;
	}
	if (next != IPPROTO_UDP)
		return 0;
	return tunnel_gue(l4, data_end, gue_port, t);
}

/* 1 when the frame looks like one of our tunnels (t filled in), 0 for any other traffic. */
static __always_inline int tunnel_parse(void *data, void *data_end, __u16 gue_port,
					struct tunnel *t)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return tunnel_parse4((void *)(eth + 1), data_end, gue_port, t);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return tunnel_parse6((void *)(eth + 1), data_end, gue_port, t);
	return 0;
}

#endif /* SHOAL_DECAP_TUNNEL_H */
