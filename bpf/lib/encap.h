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

/* Bytes of the second-chance option (shoal_abi.h) in an outer header of this family. */
static __always_inline __u32 encap_chance_len(const struct shoal_backend *be)
{
	return be->family == 6 ? sizeof(struct shoal_chance6) : sizeof(struct shoal_chance4);
}

/* A segment routing header (RFC 8754) with one segment and no TLVs: 24 bytes. */
struct encap_srh1 {
	__u8 nexthdr;       /* the inner packet: IPPROTO_IPIP or IPPROTO_IPV6 */
	__u8 hdrlen;        /* 8-octet units after the first 8: 2 */
	__u8 type;          /* 4: segment routing */
	__u8 segments_left; /* 0: the only segment is the destination */
	__u8 last_entry;    /* 0: one segment */
	__u8 flags;
	__u16 tag;
	__u32 segment[4];   /* the backend's SID (its address in the backend table) */
};
#define SRH1_LEN 24
#define IPPROTO_ROUTING_HDR 43
#define SRH_TYPE_SEGMENT_ROUTING 4

/* encap: the VIP's SHOAL_VIP_F_GUE / SHOAL_VIP_F_SRV6 bits. SRv6 needs an IPv6 backend (Python
 * refuses others); an IPv4 one gets plain IPIP. */
static __always_inline int encap_srv6(const struct shoal_backend *be, __u32 encap)
{
	return (encap & SHOAL_VIP_F_SRV6) && be->family == 6;
}

/* Bytes added in front of the inner IP packet; prev: the flow's previous owner, or NULL (never
 * with SRv6). */
static __always_inline __u32 encap_overhead(const struct shoal_backend *be, __u32 encap,
					    const struct shoal_backend *prev)
{
	if (encap_srv6(be, encap))
		return IPV6_HLEN + SRH1_LEN;
	return (be->family == 6 ? IPV6_HLEN : IPV4_HLEN) + (encap & SHOAL_VIP_F_GUE ? UDP_HLEN : 0) +
	       (prev ? encap_chance_len(be) : 0);
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
					    __u32 payload_len, __u8 proto, __u32 opt_len)
{
	*(__u8 *)o = 0x40 | ((IPV4_HLEN + opt_len) >> 2); /* version 4, IHL 5 or 7 */
	o->tos = pkt->tos;
	o->tot_len = bpf_htons(IPV4_HLEN + opt_len + payload_len);
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

static __always_inline void encap_write_chance4(struct shoal_chance4 *c,
						const struct shoal_backend *prev)
{
	c->type = SHOAL_CHANCE_OPT4;
	c->len = sizeof(*c);
	c->flags = 0;
	c->pad = 0;
	c->prev = prev->addr[0];
}

static __always_inline void encap_write_chance6(struct shoal_chance6 *c,
						const struct shoal_backend *prev, __u8 next)
{
	c->nexthdr = next;
	c->hdrlen = sizeof(*c) / 8 - 1;
	c->padn_type = 1;
	c->padn_len = 0;
	c->type = SHOAL_CHANCE_OPT6;
	c->len = sizeof(*c) - 6;
	c->flags = 0;
	c->pad = 0;
	__builtin_memcpy(c->prev, prev->addr, 16);
}

static __always_inline void encap_write_srh1(struct encap_srh1 *srh, const struct packet *pkt,
					     const struct shoal_backend *be)
{
	srh->nexthdr = encap_inner_proto(pkt);
	srh->hdrlen = (SRH1_LEN - 8) / 8;
	srh->type = SRH_TYPE_SEGMENT_ROUTING;
	srh->segments_left = 0;
	srh->last_entry = 0;
	srh->flags = 0;
	srh->tag = 0;
	__builtin_memcpy(srh->segment, be->addr, 16);
}

/* Grows the head by the overhead, moves the l2_len-byte L2 header to the front and writes the
 * outer headers behind it (with the second-chance option when prev is set; prev has be's
 * family; SRv6 carries none). l2_len must be a constant (14 or 18) so each variant is verified
 * on its own. Returns 0, or -1 when the head cannot grow. */
static __always_inline int encap_packet(struct xdp_md *ctx, const struct packet *pkt,
					const struct shoal_backend *be,
					const struct shoal_config *cfg, __u32 flow_bits, __u32 encap,
					const struct shoal_backend *prev, const __u32 l2_len)
{
	int gue = encap & SHOAL_VIP_F_GUE;
	__u32 overhead = encap_overhead(be, encap, prev);
	if (bpf_xdp_adjust_head(ctx, 0 - (int)overhead))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *old_l2 = data + overhead;
	/* Without the option the largest outer header always fits (the inner packet holds at
	 * least IP + UDP); the option is checked where it is written. */
	if (data + l2_len + IPV6_HLEN + UDP_HLEN > data_end || old_l2 + l2_len > data_end)
		return -1;
	/* overhead >= 20 > l2_len: never overlapping, so a plain copy is safe. */
	__builtin_memcpy(data, old_l2, l2_len);
	__u16 *l2_proto = data + l2_len - 2;
	void *outer = data + l2_len;
	__u32 inner_len = pkt->l3_len;
	__u8 proto = gue ? IPPROTO_UDP : encap_inner_proto(pkt);

	if (encap_srv6(be, encap)) {
		struct ipv6hdr *o6 = outer;
		struct encap_srh1 *srh = (void *)(o6 + 1);
		if ((void *)(srh + 1) > data_end)
			return -1;
		*l2_proto = bpf_htons(ETH_P_IPV6);
		encap_write_ip6(o6, pkt, be, cfg, flow_bits, inner_len + SRH1_LEN,
				IPPROTO_ROUTING_HDR);
		encap_write_srh1(srh, pkt, be);
	} else if (be->family == 6) {
		struct ipv6hdr *o6 = outer;
		void *next = o6 + 1;
		__u32 payload = inner_len + (gue ? UDP_HLEN : 0);
		*l2_proto = bpf_htons(ETH_P_IPV6);
		if (prev) {
			struct shoal_chance6 *c6 = next;
			if ((void *)(c6 + 1) > data_end)
				return -1;
			encap_write_chance6(c6, prev, proto);
			next = c6 + 1;
			payload += sizeof(*c6);
			proto = IPPROTO_DSTOPTS;
		}
		encap_write_ip6(o6, pkt, be, cfg, flow_bits, payload, proto);
		if (gue) {
			struct udphdr *uh = next;
			if ((void *)(uh + 1) > data_end)
				return -1;
			encap_write_udp(uh, encap_gue_sport(flow_bits), cfg->gue_port,
					inner_len + UDP_HLEN);
		}
	} else {
		struct iphdr *o4 = outer;
		void *next = o4 + 1;
		__u32 opt_len = 0;
		*l2_proto = bpf_htons(ETH_P_IP);
		if (prev) {
			struct shoal_chance4 *c4 = next;
			if ((void *)(c4 + 1) > data_end)
				return -1;
			encap_write_chance4(c4, prev);
			next = c4 + 1;
			opt_len = sizeof(*c4);
		}
		encap_write_ip4(o4, pkt, be, cfg, flow_bits, inner_len + (gue ? UDP_HLEN : 0), proto,
				opt_len);
		o4->check = opt_len ? ipv4_header_csum_opt(o4) : ipv4_header_csum(o4);
		if (gue) {
			struct udphdr *uh = next;
			if ((void *)(uh + 1) > data_end)
				return -1;
			encap_write_udp(uh, encap_gue_sport(flow_bits), cfg->gue_port,
					inner_len + UDP_HLEN);
		}
	}
	return 0;
}

#endif /* SHOAL_ENCAP_H */
