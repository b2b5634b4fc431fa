/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Session cache: keeps an existing flow on its backend when the table changes. An entry is
 * honoured only while its backend is usable and still the same backend (generation), and only
 * while the flow is not idle for longer than its timeout: udp_timeout, tcp_timeout, or
 * tcp_closing_timeout once the flow has sent a FIN or an RST. An expired entry is hashed afresh
 * (the current pick), and a SYN is never placed by the cache (it is hashed fresh, and its
 * entry rewritten unless it already names that pick), so a reused 5-tuple never follows an old
 * connection's entry. */
#ifndef SHOAL_SESSION_H
#define SHOAL_SESSION_H

#include "lib/consts.h"
#include "lb_maps.h"
#include "shoal_abi.h"

/* An entry's time is rewritten only once it lags by 1/16 of its timeout, so a busy flow costs
 * no map write per packet, and an entry expires at most 1/16 of the timeout early. */
#define SHOAL_TOUCH_SHIFT 4

static __always_inline __u64 session_timeout(const struct shoal_config *cfg, __u8 proto,
					     __u64 touched)
{
	if (proto == IPPROTO_UDP)
		return cfg->udp_timeout;
	return touched & SHOAL_FLOW_CLOSING ? cfg->tcp_closing_timeout : cfg->tcp_timeout;
}

/* SHOAL_FLOW_CLOSING when this packet ends its TCP flow (FIN or RST), else 0. */
static __always_inline __u64 session_closing(__u8 proto, __u8 tcp_flags)
{
	return proto == IPPROTO_TCP && (tcp_flags & (SHOAL_TCP_FIN | SHOAL_TCP_RST))
		       ? SHOAL_FLOW_CLOSING
		       : 0;
}

/* Returns the cached backend (its id in *id), or NULL on a miss, a stale or an expired entry,
 * with the reason's counter in *miss: the caller counts it once the packet proves to be VIP
 * traffic, then hashes the flow afresh. */
static __always_inline struct shoal_backend *session_lookup(const struct shoal_flow_key *key,
							    const struct shoal_config *cfg,
							    __u8 tcp_flags, __u32 *id, __u32 *miss)
{
	struct shoal_flow_val *v = bpf_map_lookup_elem(&shoal_sessions_v1, key);
	if (!v) {
		*miss = SHOAL_CNT_CACHE_MISS;
		return NULL;
	}
	*id = v->backend_id;
	struct shoal_backend *be = bpf_map_lookup_elem(&shoal_backends_v1, id);
	if (!be || be->gen != v->backend_gen || !(be->flags & SHOAL_BE_F_USABLE)) {
		*miss = SHOAL_CNT_CACHE_STALE;
		return NULL;
	}
	/* Read the entry's time before the clock: another CPU may refresh it meanwhile, and a
	 * signed age keeps such a newer time from looking ancient. */
	__u64 touched = v->touched;
	__u64 now = bpf_jiffies64();
	__u64 timeout = session_timeout(cfg, key->proto, touched);
	__s64 idle = (__s64)(now - (touched & ~SHOAL_FLOW_CLOSING));
	if (timeout && idle > (__s64)timeout) {
		*miss = SHOAL_CNT_CACHE_EXPIRED;
		return NULL;
	}
	__u64 closing = session_closing(key->proto, tcp_flags);
	if (closing & ~touched) {
		v->touched = now | closing;
		count(SHOAL_CNT_CACHE_CLOSING);
	} else if (idle > (__s64)(timeout >> SHOAL_TOUCH_SHIFT)) {
		v->touched = now | (touched & SHOAL_FLOW_CLOSING);
	}
	count(SHOAL_CNT_CACHE_HIT);
	return be;
}

/* A new entry for a freshly hashed flow. An RST ends its flow, so it gets none (a flood of
 * RSTs for unknown flows cannot evict live entries); a FIN's entry starts closing.
 * A SYN (which never read the cache) looks first: when the entry already names this very pick
 * (same backend, same generation), its time is refreshed in place, sparing the kernel a whole
 * LRU node allocation for an update of an existing key; any other pick is written whole, so a
 * SYN never follows an old connection's entry. Other packets come here after a miss, a stale
 * or an expired entry, and write whole. */
static __always_inline void session_insert(const struct shoal_flow_key *key, __u8 tcp_flags,
					   __u32 backend_id, __u32 gen, __u64 now)
{
	if (key->proto == IPPROTO_TCP && (tcp_flags & SHOAL_TCP_RST))
		return;
	__u64 touched = now | session_closing(key->proto, tcp_flags);
	if (key->proto == IPPROTO_TCP && (tcp_flags & SHOAL_TCP_SYN)) {
		struct shoal_flow_val *old = bpf_map_lookup_elem(&shoal_sessions_v1, key);
		if (old && old->backend_id == backend_id && old->backend_gen == gen) {
			old->touched = touched;
			count(SHOAL_CNT_CACHE_INSERT);
			return;
		}
	}
	struct shoal_flow_val v = {
		.backend_id = backend_id,
		.backend_gen = gen,
		.touched = touched,
	};
	if (!bpf_map_update_elem(&shoal_sessions_v1, key, &v, BPF_ANY))
		count(SHOAL_CNT_CACHE_INSERT);
}

#endif /* SHOAL_SESSION_H */
