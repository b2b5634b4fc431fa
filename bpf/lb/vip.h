/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Finding the VIP of a packet: a bitmap pre-filter on the destination address, then the exact
 * (address, port, protocol) lookup, then an any-port VIP if one exists. */
#ifndef SHOAL_VIP_H
#define SHOAL_VIP_H

#include "lib/consts.h"
#include "lib/parse.h"
#include "lb_maps.h"
#include "shoal_abi.h"

/* 0 when the destination is certainly no VIP address; 1 when it may be one. Python sets the
 * bits (src/shoal/dataplane/vipfilter.py computes the same index). */
static __always_inline int vip_filter_may_match(const struct packet *pkt)
{
	const __u32 *d = pkt->flow.dst;
	__u32 h = ((d[0] ^ d[1] ^ d[2] ^ d[3]) * SHOAL_VIP_FILTER_MULT) >>
		  (32 - SHOAL_VIP_FILTER_BITS);
	__u32 word = h >> 6;
	__u64 *bits = bpf_map_lookup_elem(&shoal_vip_filter_v1, &word);
	return bits && ((*bits >> (h & 63)) & 1);
}

/* Exact (address, port, protocol) first; an any-port VIP only when one exists. */
static __always_inline struct shoal_vip_val *vip_lookup(const struct packet *pkt,
							const struct shoal_config *cfg)
{
	struct shoal_vip_key key = {};
	__builtin_memcpy(key.addr, pkt->flow.dst, 16);
	key.port = pkt->flow.dport;
	key.proto = pkt->flow.proto;
	key.family = pkt->family;
	struct shoal_vip_val *vip = bpf_map_lookup_elem(&shoal_vips_v1, &key);
	if (vip || !cfg->anyport_vips)
		return vip;
	key.port = 0;
	vip = bpf_map_lookup_elem(&shoal_vips_v1, &key);
	if (vip && (vip->flags & SHOAL_VIP_F_ANY_PORT))
		return vip;
	return NULL;
}

#endif /* SHOAL_VIP_H */
