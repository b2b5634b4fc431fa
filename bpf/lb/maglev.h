/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Maglev lookup: the flow hash picks a slot of the VIP's table (filled by Python). */
#ifndef SHOAL_MAGLEV_H
#define SHOAL_MAGLEV_H

#include "lib/consts.h"
#include "lb_maps.h"

/* Returns the backend id for hash, or -1 when the VIP has no table (no usable backend). */
static __always_inline __s64 maglev_pick(__u32 vip_id, __u32 hash)
{
	void *table = bpf_map_lookup_elem(&shoal_maglev_v1, &vip_id);
	if (!table)
		return -1;
	__u32 slot = 0;
	__u32 *size = bpf_map_lookup_elem(table, &slot);
	if (!size || !*size)
		return -1;
	slot = 1 + hash % *size;
	__u32 *id = bpf_map_lookup_elem(table, &slot);
	if (!id)
		return -1;
	return *id;
}

#endif /* SHOAL_MAGLEV_H */
