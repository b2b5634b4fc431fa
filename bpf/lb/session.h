/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Session cache: keeps an existing flow on its backend when the table changes. An entry is
 * honoured only while its backend is usable and still the same backend (generation); UDP
 * entries expire after udp_timeout jiffies of silence. */
#ifndef SHOAL_SESSION_H
#define SHOAL_SESSION_H

#include "lib/consts.h"
#include "lb_maps.h"
#include "shoal_abi.h"

/* Returns the cached backend (its id in *id), or NULL on a miss, a stale or an expired entry,
 * with the reason's counter in *miss: the caller counts it once the packet proves to be VIP
 * traffic, then hashes the flow afresh. */
static __always_inline struct shoal_backend *session_lookup(const struct shoal_flow_key *key,
							    const struct shoal_config *cfg,
							    __u32 *id, __u32 *miss)
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
	if (key->proto == IPPROTO_UDP) {
		__u64 now = bpf_jiffies64();
		if (now - v->touched > cfg->udp_timeout) {
			*miss = SHOAL_CNT_CACHE_EXPIRED;
			return NULL;
		}
		v->touched = now;
	}
	count(SHOAL_CNT_CACHE_HIT);
	return be;
}

static __always_inline void session_insert(const struct shoal_flow_key *key, __u32 backend_id,
					   __u32 gen, __u64 now)
{
	struct shoal_flow_val v = {
		.backend_id = backend_id,
		.backend_gen = gen,
		.touched = now,
	};
	if (!bpf_map_update_elem(&shoal_sessions_v1, key, &v, BPF_ANY))
		count(SHOAL_CNT_CACHE_INSERT);
}

#endif /* SHOAL_SESSION_H */
