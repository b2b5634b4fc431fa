/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Second chance, the L4 side: each VIP keeps the table it had before its last change
 * (shoal_maglev_prev_v1 or its class's map, moved there by Python when it swaps in a new one). A non-SYN TCP
 * packet that misses the session cache may belong to a connection another L4 node placed
 * with the old table; when the old table gives the flow's slot to another usable backend, that
 * backend travels in the outer header (shoal_abi.h), and the current pick's decap program
 * sends the packet on to it if it has no socket for the flow. Such a packet writes no session
 * entry: the next one must carry the previous owner too. Cache hits and SYNs never come here. */
#ifndef SHOAL_LB_CHANCE_H
#define SHOAL_LB_CHANCE_H

#include "lib/consts.h"
#include "lb_maps.h"
#include "maglev.h"
#include "shoal_abi.h"

/* The flow's owner in the previous table when it is another usable backend of the same VIP
 * and family as the current pick, else NULL. */
static __always_inline struct shoal_backend *chance_prev_owner(const struct shoal_config *cfg,
							       __u32 vip_id, __u32 hash,
							       __u32 cur_id,
							       const struct shoal_backend *cur)
{
	if (cfg->flags & SHOAL_CFG_F_NO_CHANCE)
		return NULL;
	__s64 id = maglev_pick_previous(vip_id, hash);
	if (id < 0 || id == cur_id)
		return NULL;
	__u32 prev_id = id;
	struct shoal_backend *prev = bpf_map_lookup_elem(&shoal_backends_v1, &prev_id);
	/* A freed or reused id fails these checks (freed: family 0; reused: another VIP). */
	if (!prev || !(prev->flags & SHOAL_BE_F_USABLE) || prev->vip_id != vip_id ||
	    prev->family != cur->family)
		return NULL;
	return prev;
}

#endif /* SHOAL_LB_CHANCE_H */
