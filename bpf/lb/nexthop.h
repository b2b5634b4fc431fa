/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Next hop towards a backend: the kernel's FIB and neighbour table (bpf_fib_lookup), or the
 * configured gateway MAC when the FIB has no answer or lookups are switched off. The lookup
 * carries the outer packet's own fields (source, protocol, GUE ports, flow label), so the
 * kernel's multipath hash (net.ipv4.fib_multipath_hash_policy) picks the path the kernel would
 * pick for that packet; with SHOAL_CFG_F_FIB_PER_FLOW every packet looks up (no per-backend
 * cache), so flows to one backend spread over ECMP paths. */
#ifndef SHOAL_NEXTHOP_H
#define SHOAL_NEXTHOP_H

#include "lib/consts.h"
#include "lib/encap.h"
#include "lib/parse.h"
#include "lb_maps.h"
#include "shoal_abi.h"

enum nexthop_kind {
	NEXTHOP_GATEWAY = 0, /* dmac = gateway MAC, smac = the frame's own destination MAC */
	NEXTHOP_FIB = 1,     /* dmac, smac and ifindex from the FIB */
	NEXTHOP_KERNEL = 2,  /* neighbour unresolved: the kernel forwards the encapsulated packet */
};

struct nexthop {
	__u8 dmac[6];
	__u8 smac[6];
	__u32 ifindex;
	__u32 kind; /* enum nexthop_kind */
};

/* The cached answer for this backend if it is current. now = 0 on the fast path (no clock
 * read there); a new flow passes its time (jiffies) so stale entries refresh without user
 * space. */
static __always_inline int nexthop_cached(const struct shoal_config *cfg, __u32 backend_id,
					  __u64 now, struct nexthop *nh,
					  struct shoal_nexthop **slot)
{
	struct shoal_nexthop *c = bpf_map_lookup_elem(&shoal_nexthops_v1, &backend_id);
	*slot = c;
	if (!c || !cfg->nh_epoch || c->epoch != cfg->nh_epoch)
		return 0;
	if (now && now - c->filled > cfg->nh_max_age)
		return 0;
	__builtin_memcpy(nh->dmac, c->dmac, 6);
	__builtin_memcpy(nh->smac, c->smac, 6);
	nh->ifindex = c->ifindex;
	nh->kind = NEXTHOP_FIB;
	return 1;
}

static __always_inline void nexthop_store(const struct shoal_config *cfg,
					  struct shoal_nexthop *c, const struct nexthop *nh,
					  __u64 now)
{
	if (!c)
		return;
	__builtin_memcpy(c->dmac, nh->dmac, 6);
	__builtin_memcpy(c->smac, nh->smac, 6);
	c->ifindex = nh->ifindex;
	c->filled = now ? now : bpf_jiffies64();
	c->epoch = cfg->nh_epoch;
}

/* Returns 0 with *nh filled, or the SHOAL_CNT_DROP_* reason. */
/* The outer packet's fields, as the kernel's multipath hash reads them. */
static __always_inline void nexthop_flow_fields(struct bpf_fib_lookup *fib,
						const struct packet *pkt,
						const struct shoal_backend *be,
						const struct shoal_config *cfg, __u32 flow_bits,
						int gue)
{
	fib->l4_protocol = gue ? IPPROTO_UDP : encap_inner_proto(pkt);
	if (gue) {
		fib->sport = encap_gue_sport(flow_bits);
		fib->dport = cfg->gue_port;
	}
	if (be->family == 6) {
		fib->family = AF_INET6;
		fib->flowinfo = bpf_htonl(flow_bits & 0xFFFFF);
		fib->ipv6_src[0] = cfg->encap_src6[0];
		fib->ipv6_src[1] = cfg->encap_src6[1];
		fib->ipv6_src[2] = cfg->encap_src6[2];
		fib->ipv6_src[3] = cfg->encap_src6[3] ^ bpf_htonl(flow_bits);
		__builtin_memcpy(fib->ipv6_dst, be->addr, 16);
	} else {
		fib->family = AF_INET;
		fib->ipv4_src = encap_src4(cfg, flow_bits);
		fib->ipv4_dst = be->addr[0];
	}
}

/* Returns 0 with *nh filled, or the SHOAL_CNT_DROP_* reason; for SHOAL_CNT_DROP_TOO_BIG the
 * route's MTU is in *route_mtu. */
static __always_inline int nexthop_lookup(struct xdp_md *ctx, const struct shoal_config *cfg,
					  const struct packet *pkt, const struct shoal_backend *be,
					  __u32 backend_id, __u32 outer_len, __u32 flow_bits,
					  int gue, __u64 now, struct nexthop *nh, __u32 *route_mtu)
{
	nh->ifindex = ctx->ingress_ifindex;
	nh->kind = NEXTHOP_GATEWAY;
	if (cfg->flags & SHOAL_CFG_F_FIB) {
		struct shoal_nexthop *slot = NULL;
		int per_flow = cfg->flags & SHOAL_CFG_F_FIB_PER_FLOW;
		if (!per_flow && nexthop_cached(cfg, backend_id, now, nh, &slot))
			return 0;
		struct bpf_fib_lookup fib = {};
		fib.ifindex = ctx->ingress_ifindex;
		fib.tot_len = outer_len;
		nexthop_flow_fields(&fib, pkt, be, cfg, flow_bits, gue);
		int rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
		if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
			__builtin_memcpy(nh->dmac, fib.dmac, 6);
			__builtin_memcpy(nh->smac, fib.smac, 6);
			nh->ifindex = fib.ifindex;
			nh->kind = NEXTHOP_FIB;
			nexthop_store(cfg, slot, nh, now);
			return 0;
		}
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
			*route_mtu = fib.mtu_result;
			return SHOAL_CNT_DROP_TOO_BIG;
		}
		/* A route but no ARP/ND entry yet: the kernel's forwarding path resolves it (slow
		 * path for the first packets; health checks keep entries fresh afterwards). */
		if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
			nh->kind = NEXTHOP_KERNEL;
			return 0;
		}
	}
	if (!(cfg->flags & SHOAL_CFG_F_GW_MAC))
		return SHOAL_CNT_DROP_NO_ROUTE;
	if (cfg->flags & SHOAL_CFG_F_FIB)
		count(SHOAL_CNT_FIB_FALLBACK);
	__builtin_memcpy(nh->dmac, cfg->gw_mac, 6);
	return 0;
}

#endif /* SHOAL_NEXTHOP_H */
