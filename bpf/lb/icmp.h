/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Too big after encapsulation: the L4 node answers as a router on the path would, with ICMP
 * "fragmentation needed" (RFC 1191) or ICMPv6 "packet too big" (RFC 8201) carrying the largest
 * inner packet the tunnel carries, so the client lowers its path MTU instead of retrying into a
 * black hole. The reply is the packet itself, rewritten in place: new IP and ICMP headers in
 * front of its first bytes, truncated to a fixed size (so the checksum is over a constant
 * length), back out of the port it came in on. The source is the VIP the client wrote to.
 * Rate limited per CPU by shoal_config.icmp_rate. IPv4 packets without DF are dropped (a
 * router would fragment them; XDP cannot), and so are ICMP errors (no error about an error). */
#ifndef SHOAL_ICMP_H
#define SHOAL_ICMP_H

#include <linux/ip.h>
#include <linux/ipv6.h>
#include "lib/consts.h"
#include "lib/csum.h"
#include "lib/parse.h"
#include "lb_maps.h"
#include "shoal_abi.h"

/* Bytes of the offending packet quoted: its IP header and 44 bytes of its L4 header for IPv4
 * (RFC 792 asks for the header and 8), 128 bytes for IPv6 (RFC 4443 asks for as much as fits;
 * this keeps the reply small). Multiples of 4, as bpf_csum_diff requires. */
#define ICMP4_QUOTE 64
#define ICMP6_QUOTE 128
#define ICMP4_GROW (IPV4_HLEN + ICMP_HLEN)
#define ICMP6_GROW (IPV6_HLEN + ICMP_HLEN)

static __always_inline int icmp_budget(const struct shoal_config *cfg)
{
	__u32 zero = 0;
	if (!cfg->icmp_rate)
		return 0;
	struct shoal_icmp_rate *r = bpf_map_lookup_elem(&shoal_icmp_rate_v1, &zero);
	if (!r)
		return 0;
	__u64 now = bpf_jiffies64();
	if (now - r->window_start >= cfg->hz) {
		r->window_start = now;
		r->sent = 0;
	}
	if (r->sent >= cfg->icmp_rate)
		return 0;
	r->sent += 1;
	return 1;
}

/* The new head's L2 header: the old one (tags kept) with the MACs swapped. */
static __always_inline int icmp_reverse_l2(void *data, void *data_end, __u32 grow,
					   const __u32 l2_len)
{
	__u8 *old = data + grow;
	__u8 *eth = data;
	if ((void *)(old + l2_len) > data_end)
		return -1;
	__builtin_memcpy(eth, old + 6, 6);
	__builtin_memcpy(eth + 6, old, 6);
	__builtin_memcpy(eth + 12, old + 12, l2_len - 12);
	return 0;
}

static __always_inline int icmp_truncate(struct xdp_md *ctx, __u32 want)
{
	int len = (long)ctx->data_end - (long)ctx->data;
	return bpf_xdp_adjust_tail(ctx, (int)want - len);
}

static __always_inline int icmp4_too_big(struct xdp_md *ctx, __u16 mtu, const __u32 l2_len)
{
	if (bpf_xdp_adjust_head(ctx, 0 - ICMP4_GROW))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + ICMP4_GROW + l2_len + ICMP4_QUOTE > data_end)
		return -1;
	if (icmp_reverse_l2(data, data_end, ICMP4_GROW, l2_len))
		return -1;
	struct iphdr *ip = data + l2_len;
	struct shoal_icmphdr *ic = (void *)(ip + 1);
	struct iphdr *orig = (void *)(ic + 1);
	__u32 client = orig->saddr, vip = orig->daddr;
	*(__u8 *)ip = 0x45;
	ip->tos = 0;
	ip->tot_len = bpf_htons(ICMP4_GROW + ICMP4_QUOTE);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = IPIP_TTL;
	ip->protocol = IPPROTO_ICMP;
	ip->check = 0;
	ip->saddr = vip;
	ip->daddr = client;
	ip->check = ipv4_header_csum(ip);
	ic->type = SHOAL_ICMP_DEST_UNREACH;
	ic->code = SHOAL_ICMP_FRAG_NEEDED;
	ic->checksum = 0;
	ic->rest = bpf_htonl(mtu); /* 16 unused bits, then the next-hop MTU */
	if (icmp_truncate(ctx, l2_len + ICMP4_GROW + ICMP4_QUOTE))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ic = data + l2_len + IPV4_HLEN;
	if ((void *)ic + ICMP_HLEN + ICMP4_QUOTE > data_end)
		return -1;
	__s64 sum = bpf_csum_diff(NULL, 0, (void *)ic, ICMP_HLEN + ICMP4_QUOTE, 0);
	ic->checksum = csum_fold((__u32)sum);
	return 0;
}

static __always_inline int icmp6_too_big(struct xdp_md *ctx, __u32 mtu, const __u32 l2_len)
{
	if (bpf_xdp_adjust_head(ctx, 0 - ICMP6_GROW))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + ICMP6_GROW + l2_len + ICMP6_QUOTE > data_end)
		return -1;
	if (icmp_reverse_l2(data, data_end, ICMP6_GROW, l2_len))
		return -1;
	struct ipv6hdr *ip6 = data + l2_len;
	struct shoal_icmphdr *ic = (void *)(ip6 + 1);
	struct ipv6hdr *orig = (void *)(ic + 1);
	*(__u32 *)ip6 = bpf_htonl(6U << 28);
	ip6->payload_len = bpf_htons(ICMP_HLEN + ICMP6_QUOTE);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = IPIP_TTL;
	__builtin_memcpy(&ip6->saddr, &orig->daddr, 16);
	__builtin_memcpy(&ip6->daddr, &orig->saddr, 16);
	ic->type = SHOAL_ICMP6_PKT_TOOBIG;
	ic->code = 0;
	ic->checksum = 0;
	ic->rest = bpf_htonl(mtu);
	if (icmp_truncate(ctx, l2_len + ICMP6_GROW + ICMP6_QUOTE))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip6 = data + l2_len;
	ic = (void *)(ip6 + 1);
	if ((void *)ic + ICMP_HLEN + ICMP6_QUOTE > data_end)
		return -1;
	/* Pseudo-header (RFC 8200 section 8.1): addresses, upper-layer length, next header. */
	__s64 sum = bpf_csum_diff(NULL, 0, (void *)&ip6->saddr, 32, 0);
	sum = bpf_csum_diff(NULL, 0, (void *)ic, ICMP_HLEN + ICMP6_QUOTE, (__u32)sum);
	__u64 s = (__u32)sum;
	s += bpf_htonl(ICMP_HLEN + ICMP6_QUOTE);
	s += bpf_htonl(IPPROTO_ICMPV6);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	ic->checksum = csum_fold((__u32)s);
	return 0;
}

/* inner_mtu: the largest inner packet that fits. Returns the verdict (XDP_TX with the reply
 * in the buffer, or XDP_DROP), counting it. */
static __always_inline int icmp_too_big(struct xdp_md *ctx, const struct packet *pkt,
					const struct shoal_config *cfg, __u32 inner_mtu)
{
	int rc = -1;
	if (pkt->icmp || !pkt->df || !icmp_budget(cfg))
		goto drop;
	if (pkt->family == 4) {
		if (pkt->vlan == 0)
			rc = icmp4_too_big(ctx, inner_mtu, ETH_HLEN);
		else if (pkt->vlan == 1)
			rc = icmp4_too_big(ctx, inner_mtu, ETH_HLEN + VLAN_HLEN);
		else
			rc = icmp4_too_big(ctx, inner_mtu, ETH_HLEN + 2 * VLAN_HLEN);
	} else {
		if (pkt->vlan == 0)
			rc = icmp6_too_big(ctx, inner_mtu, ETH_HLEN);
		else if (pkt->vlan == 1)
			rc = icmp6_too_big(ctx, inner_mtu, ETH_HLEN + VLAN_HLEN);
		else
			rc = icmp6_too_big(ctx, inner_mtu, ETH_HLEN + 2 * VLAN_HLEN);
	}
	if (rc == 0) {
		count(SHOAL_CNT_ICMP_TOO_BIG);
		return XDP_TX;
	}
drop:
	count(SHOAL_CNT_DROP_TOO_BIG);
	return XDP_DROP;
}

#endif /* SHOAL_ICMP_H */
