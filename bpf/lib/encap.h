/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Encapsulation towards a backend: IPIP (IPv4 in IPv4), an IPv6 outer header (IPv4 or IPv6
 * inside), or GUE variant 1 (the inner IP packet straight after a UDP header) in either family.
 * The L2 header moves to the new head; the inner packet stays where it is, untouched. */
#ifndef SHOAL_ENCAP_H
#define SHOAL_ENCAP_H

#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include "consts.h"
#include "csum.h"
#include "parse.h"
#include "shoal_abi.h"

/* Bytes added in front of the inner IP packet. */
static __always_inline __u32 encap_overhead(const struct shoal_backend *be, int gue)
{
	return (be->family == 6 ? IPV6_HLEN : IPV4_HLEN) + (gue ? UDP_HLEN : 0);
}

/* Inner protocol number as seen by the outer header. */
static __always_inline __u8 encap_inner_proto(const struct packet *pkt)
{
	return pkt->family == 4 ? IPPROTO_IPIP : IPPROTO_IPV6;
}

/* GUE source port: the ephemeral range, chosen per flow so receive-side RSS spreads flows. */
static __always_inline __u16 encap_gue_sport(__u32 flow_bits)
{
	return bpf_htons(0xC000 | (flow_bits & 0x3FFF));
}

/* Outer IPv4 source: per flow, so flows spread over the backend's receive queues (RSS). */
static __always_inline __u32 encap_src4(const struct shoal_config *cfg, __u32 flow_bits)
{
	return (cfg->encap_src4 & ~cfg->encap_src4_mask) | (bpf_htonl(flow_bits) & cfg->encap_src4_mask);
}

static __always_inline void encap_write_udp(struct udphdr *uh, __u16 sport, __u16 dport, __u32 len)
{
	uh->source = sport;
	uh->dest = dport;
	uh->len = bpf_htons(len);
	/* Zero: allowed for IPv4, and for tunnels over IPv6 by RFC 6935/6936. */
	uh->check = 0;
}

static __always_inline void encap_write_ip4(struct iphdr *o, const struct packet *pkt,
					    const struct shoal_backend *be,
					    const struct shoal_config *cfg, __u32 flow_bits,
					    __u32 payload_len, __u8 proto)
{
	*(__u8 *)o = 0x45; /* version 4, IHL 5 */
	o->tos = pkt->tos;
	o->tot_len = bpf_htons(IPV4_HLEN + payload_len);
	o->id = 0;
	/* DF: a tunnel packet too big for the path is refused (ICMP) instead of being split,
	 * which would cost every backend a reassembly; the decap program drops fragments. */
	o->frag_off = bpf_htons(IP_DF);
	o->ttl = IPIP_TTL;
	o->protocol = proto;
	o->check = 0;
	/* A per-flow outer source spreads flows over the backend's receive queues (RSS). */
	o->saddr = encap_src4(cfg, flow_bits);
	o->daddr = be->addr[0];
	o->check = ipv4_header_csum(o);
}

static __always_inline void encap_write_ip6(struct ipv6hdr *o, const struct packet *pkt,
					    const struct shoal_backend *be,
					    const struct shoal_config *cfg, __u32 flow_bits,
					    __u32 payload_len, __u8 proto)
{
	/* Version 6, the inner traffic class, and a per-flow label for ECMP and RSS. */
	*(__u32 *)o = bpf_htonl((6U << 28) | ((__u32)pkt->tos << 20) | (flow_bits & 0xFFFFF));
	o->payload_len = bpf_htons(payload_len);
	o->nexthdr = proto;
	o->hop_limit = IPIP_TTL;
	o->saddr.in6_u.u6_addr32[0] = cfg->encap_src6[0];
	o->saddr.in6_u.u6_addr32[1] = cfg->encap_src6[1];
	o->saddr.in6_u.u6_addr32[2] = cfg->encap_src6[2];
	o->saddr.in6_u.u6_addr32[3] = cfg->encap_src6[3] ^ bpf_htonl(flow_bits);
	__builtin_memcpy(&o->daddr, be->addr, 16);
}

/* Grows the head by the overhead, moves the l2_len-byte L2 header to the front and writes the
 * outer headers behind it. l2_len must be a constant (14 or 18) so each variant is verified on
 * its own. Returns 0, or -1 when the head cannot grow. */
static __always_inline int encap_packet(struct xdp_md *ctx, const struct packet *pkt,
					const struct shoal_backend *be,
					const struct shoal_config *cfg, __u32 flow_bits, int gue,
					const __u32 l2_len)
{
	__u32 overhead = encap_overhead(be, gue);
	if (bpf_xdp_adjust_head(ctx, 0 - (int)overhead))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *old_l2 = data + overhead;
	/* The largest outer header always fits: the inner packet holds at least IP + UDP. */
	if (data + l2_len + IPV6_HLEN + UDP_HLEN > data_end || old_l2 + l2_len > data_end)
		return -1;
	/* overhead >= 20 > l2_len: never overlapping, so a plain copy is safe. */
	__builtin_memcpy(data, old_l2, l2_len);
	__u16 *l2_proto = data + l2_len - 2;
	void *outer = data + l2_len;
	__u32 inner_len = pkt->l3_len;
	__u8 proto = gue ? IPPROTO_UDP : encap_inner_proto(pkt);

	if (be->family == 6) {
		struct ipv6hdr *o6 = outer;
		*l2_proto = bpf_htons(ETH_P_IPV6);
		encap_write_ip6(o6, pkt, be, cfg, flow_bits, inner_len + (gue ? UDP_HLEN : 0), proto);
		if (gue)
			encap_write_udp((struct udphdr *)(o6 + 1), encap_gue_sport(flow_bits),
					cfg->gue_port, inner_len + UDP_HLEN);
	} else {
		struct iphdr *o4 = outer;
		*l2_proto = bpf_htons(ETH_P_IP);
		encap_write_ip4(o4, pkt, be, cfg, flow_bits, inner_len + (gue ? UDP_HLEN : 0), proto);
		if (gue)
			encap_write_udp((struct udphdr *)(o4 + 1), encap_gue_sport(flow_bits),
					cfg->gue_port, inner_len + UDP_HLEN);
	}
	return 0;
}

#endif /* SHOAL_ENCAP_H */
