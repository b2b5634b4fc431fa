// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Shoal's L4 load balancer (XDP). Reads top to bottom: parse, find the VIP, check the client
 * against the VIP's allowed prefixes (if it has a list), pick the backend (session cache, else
 * Maglev; a later fragment follows its first fragment, lb/frag.h; an ICMP error follows the
 * flow it quotes, lib/quote.h), find the next hop, encapsulate (or answer "too big",
 * lb/icmp.h), transmit; every exit counted.
 * Anything that is not VIP traffic leaves untouched with XDP_PASS. */
#include "lib/consts.h"
#include "lib/encap.h"
#include "lib/flowhash.h"
#include "lib/parse.h"
#include "shoal_abi.h"
#include "lb_maps.h"
#include "acl.h"
#include "chance.h"
#include "frag.h"
#include "icmp.h"
#include "maglev.h"
#include "nexthop.h"
#include "session.h"
#include "synguard.h"
#include "vip.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int verdict_pass(__u32 reason)
{
	count(reason);
	return XDP_PASS;
}

static __always_inline int verdict_drop(__u32 reason)
{
	count(reason);
	return XDP_DROP;
}

static __always_inline int is_tcp_syn(const struct packet *pkt)
{
	return pkt->flow.proto == IPPROTO_TCP &&
	       (pkt->tcp_flags & (SHOAL_TCP_SYN | SHOAL_TCP_ACK)) == SHOAL_TCP_SYN;
}

/* A new flow (or one the cache cannot place): Maglev, then a session entry unless flooded,
 * or, for a TCP packet other than a SYN whose slot had another owner before the VIP's last
 * change, that owner in *prev and no entry (lb/chance.h). *now_out receives the time
 * (jiffies) read for it. admitted: the ACL epoch the entry records (lb/acl.h). */
static __always_inline struct shoal_backend *lb_hash_flow(const struct packet *pkt,
							  const struct shoal_vip_val *vip,
							  const struct shoal_config *cfg, __u32 *id,
							  __u64 *now_out, struct shoal_backend **prev,
							  struct shoal_session_set *set, __u32 tag,
							  __u32 admitted)
{
	__u64 now = bpf_jiffies64();
	*now_out = now;
	/* An ICMP error belongs to its flow: no new flow for the flood detector, no entry. */
	int flooded = 1;
	if (!pkt->icmp) {
		count(SHOAL_CNT_NEW_FLOWS);
		flooded = flood_note_new_flow(cfg, now);
	}
	__u32 hash = flow_hash(&pkt->flow, cfg->hash_seed, vip->flags & SHOAL_VIP_F_SRC_HASH);
	__s64 picked = maglev_pick(vip->vip_id, hash);
	if (picked < 0)
		return NULL;
	*id = picked;
	struct shoal_backend *be = bpf_map_lookup_elem(&shoal_backends_v1, id);
	if (!be || !(be->flags & SHOAL_BE_F_USABLE))
		return NULL;
	if (pkt->icmp)
		return be; /* an error quoting a flow: no entry, no second chance */
	if (pkt->flow.proto == IPPROTO_TCP && !(pkt->tcp_flags & SHOAL_TCP_SYN)) {
		*prev = chance_prev_owner(cfg, vip->vip_id, hash, *id, be);
		if (*prev) {
			count(SHOAL_CNT_CHANCE);
			return be;
		}
	}
	if (flooded) /* pure Maglev: no entry, and so no SYN mark */
		count(SHOAL_CNT_CACHE_SKIP_FLOOD);
	else
		session_insert(set, tag, &pkt->flow, cfg, pkt->tcp_flags, *id, be, now,
			       admitted);
	return be;
}

/* Stable per flow (hit or miss alike), so a flow keeps one outer source and one RSS queue. */
static __always_inline __u32 lb_flow_bits(const struct packet *pkt)
{
	const struct shoal_flow_key *k = &pkt->flow;
	return murmur_final(k->src[0] ^ k->src[3] ^ ((__u32)k->sport << 16 | k->dport), 0);
}

static __always_inline int lb_write_macs(struct xdp_md *ctx, const struct nexthop *nh,
					 const struct shoal_config *cfg)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return -1;
	if (nh->kind == NEXTHOP_KERNEL)
		return 0; /* still addressed to us: the kernel receives and forwards it */
	if (nh->kind == NEXTHOP_FIB) {
		__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN);
	} else {
		/* The frame was addressed to us: our MAC becomes the source. */
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, cfg->gw_mac, ETH_ALEN);
	}
	return 0;
}

/* A packet the parser did not accept: a malformed L4 header is dropped when it is addressed to
 * a VIP (a backend would take it for a new flow), everything else is the kernel's. */
static __always_inline int lb_unparsed(const struct packet *pkt, int rc)
{
	__u32 zero = 0;
	if (rc != PARSE_MALFORMED)
		return verdict_pass(rc);
	struct shoal_config *cfg = bpf_map_lookup_elem(&shoal_config_v2, &zero);
	if (cfg && vip_filter_may_match(pkt) && vip_lookup(pkt, cfg))
		return verdict_drop(SHOAL_CNT_DROP_MALFORMED);
	return verdict_pass(SHOAL_CNT_PASS_OTHER);
}

SEC("xdp")
int shoal_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct packet pkt = {};
	__u32 zero = 0;

	int rc = parse_packet(data, data_end, &pkt);
	if (rc != PARSE_OK)
		return lb_unparsed(&pkt, rc);
	if (!vip_filter_may_match(&pkt))
		return verdict_pass(SHOAL_CNT_PASS_NOT_VIP);
	struct shoal_config *cfg = bpf_map_lookup_elem(&shoal_config_v2, &zero);
	if (!cfg)
		return verdict_pass(SHOAL_CNT_PASS_NOT_VIP);

	/* Established flows first: a session hit carries its VIP in the backend entry, so the
	 * common case needs no VIP lookup. TCP SYNs are always hashed fresh: a new connection
	 * takes the current pick, whatever an older connection of its 5-tuple left cached. */
	__u32 backend_id = 0, miss = 0, vip_id, vip_flags;
	__u64 now = 0;
	struct shoal_backend *be = NULL, *prev = NULL;
	struct shoal_vip_val *vip = NULL;
	struct shoal_session_set *set = NULL; /* the flow's session set, once looked up */
	struct shoal_flow_key *stored = NULL; /* the key of the flow's way, on a hit */
	__u32 tag = 0;
	if (unlikely(pkt.frag == FRAG_LATER)) {
		be = frag_follow(&pkt, &backend_id);
	} else if (!is_tcp_syn(&pkt)) {
		set = session_set(&pkt.flow, &tag);
		be = session_lookup(set, tag, &pkt.flow, cfg, pkt.tcp_flags, &backend_id, &miss,
				    &stored);
	}
	if (be) {
		vip_id = be->vip_id;
		vip_flags = be->vip_flags;
	} else {
		if (pkt.frag == FRAG_LATER)
			return verdict_pass(SHOAL_CNT_PASS_FRAGMENT);
		vip = vip_lookup(&pkt, cfg);
		if (!vip)
			return verdict_pass(SHOAL_CNT_PASS_NOT_VIP);
		if (miss)
			count(miss);
		vip_id = vip->vip_id;
		vip_flags = vip->flags;
	}
	/* Session hits too: a narrowed list ends the flows it no longer allows. A hit whose way
	 * records the list in force was let through by it already. */
	__u32 admitted = 0;
	if (vip_flags & SHOAL_VIP_F_ACL) {
		__u32 word = acl_word(vip_id);
		admitted = acl_epoch(word);
		if (!admitted || !be || !stored || session_admitted(stored) != admitted) {
			if (!acl_allows(&pkt, vip_id, word)) {
				acl_count_drop(vip_id);
				return XDP_DROP;
			}
			if (be && stored)
				session_admit(stored, admitted);
		}
	}
	if (vip) {
		be = lb_hash_flow(&pkt, vip, cfg, &backend_id, &now, &prev, set, tag, admitted);
		if (!be)
			return verdict_drop(SHOAL_CNT_DROP_NO_BACKEND);
	}

	if (unlikely(pkt.frag == FRAG_FIRST))
		frag_remember(&pkt, backend_id, be->gen);

	__u32 encap = vip_flags & (SHOAL_VIP_F_GUE | SHOAL_VIP_F_SRV6);
	int gue = encap & SHOAL_VIP_F_GUE;
	if (encap_srv6(be, encap))
		prev = NULL; /* second chance is not carried over SRv6 (docs/dataplane.md) */
	__u32 overhead = encap_overhead(be, encap, prev);
	__u32 outer_len = pkt.l3_len + overhead;
	if (cfg->mtu && outer_len > cfg->mtu)
		return icmp_too_big(ctx, &pkt, cfg, cfg->mtu - overhead);
	__u32 flow_bits = lb_flow_bits(&pkt);
	struct nexthop nh;
	__u32 route_mtu = 0;
	rc = nexthop_lookup(ctx, cfg, &pkt, be, backend_id, outer_len, flow_bits, gue, now, &nh,
			    &route_mtu);
	if (rc == SHOAL_CNT_DROP_TOO_BIG && route_mtu > overhead)
		return icmp_too_big(ctx, &pkt, cfg, route_mtu - overhead);
	if (rc)
		return verdict_drop(rc);

	if (pkt.vlan == 0)
		rc = encap_packet(ctx, &pkt, be, cfg, flow_bits, encap, prev, ETH_HLEN);
	else if (pkt.vlan == 1)
		rc = encap_packet(ctx, &pkt, be, cfg, flow_bits, encap, prev, ETH_HLEN + VLAN_HLEN);
	else
		rc = encap_packet(ctx, &pkt, be, cfg, flow_bits, encap, prev,
				  ETH_HLEN + 2 * VLAN_HLEN);
	if (rc || lb_write_macs(ctx, &nh, cfg))
		return verdict_drop(SHOAL_CNT_DROP_ENCAP);

	count_traffic(&shoal_vip_stats_v1, vip_id, pkt.l3_len);
	count_traffic(&shoal_backend_stats_v1, backend_id, pkt.l3_len);
	if (unlikely(pkt.icmp))
		count(SHOAL_CNT_ICMP_FORWARDED);
	if (nh.kind == NEXTHOP_KERNEL)
		return verdict_pass(SHOAL_CNT_PASS_NO_NEIGH);
	/* A tagged frame leaves on the trunk it came in on, tag kept. */
	if (nh.ifindex == ctx->ingress_ifindex || pkt.vlan) {
		count(SHOAL_CNT_TX);
		return XDP_TX;
	}
	count(SHOAL_CNT_REDIRECT);
	return bpf_redirect(nh.ifindex, 0);
}
