/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Maglev lookup: the flow hash picks a slot of the VIP's table (filled by Python), found in
 * the maps of the table's class (shoal_abi.h). */
#ifndef SHOAL_MAGLEV_H
#define SHOAL_MAGLEV_H

#include "lib/consts.h"
#include "lb_maps.h"

/* The id in slot of the VIP's table in outer, -1 without a table. */
static __always_inline __s64 maglev_slot(void *outer, __u32 vip_id, __u32 slot)
{
	void *table = bpf_map_lookup_elem(outer, &vip_id);
	if (!table)
		return -1;
	__u32 *id = bpf_map_lookup_elem(table, &slot);
	return id ? *id : -1;
}

/* A table of any size (class 0): its size M is slot 0. */
static __always_inline __s64 maglev_any_size(void *outer, __u32 vip_id, __u32 hash)
{
	void *table = bpf_map_lookup_elem(outer, &vip_id);
	if (!table)
		return -1;
	__u32 slot = 0;
	__u32 *size = bpf_map_lookup_elem(table, &slot);
	if (!size || !*size)
		return -1;
	slot = 1 + hash % *size;
	__u32 *id = bpf_map_lookup_elem(table, &slot);
	return id ? *id : -1;
}

static __always_inline __u32 maglev_classes(__u32 vip_id)
{
	__u32 *word = bpf_map_lookup_elem(&shoal_mclass_v1, &vip_id);
	return word ? *word : 0;
}

/* One case per class: its own maps and a constant size, so each lookup stays inlinable. */
#define MAGLEV_CURRENT_CASE(cls, size)                                                       \
	case cls:                                                                            \
		return maglev_slot(&shoal_mtab##cls##_v1, vip_id, 1 + hash % (size));
#define MAGLEV_PREVIOUS_CASE(cls, size)                                                      \
	case cls:                                                                            \
		return maglev_slot(&shoal_mprev##cls##_v1, vip_id, 1 + hash % (size));

/* Returns the backend id for hash, or -1 when the VIP has no table (no usable backend). */
static __always_inline __s64 maglev_pick(__u32 vip_id, __u32 hash)
{
	switch (maglev_classes(vip_id) & 0xff) {
		SHOAL_MAGLEV_CLASSES(MAGLEV_CURRENT_CASE)
	default:
		return maglev_any_size(&shoal_maglev_v1, vip_id, hash);
	}
}

/* The same in the VIP's table before its last change, -1 when it has none. */
static __always_inline __s64 maglev_pick_previous(__u32 vip_id, __u32 hash)
{
	switch ((maglev_classes(vip_id) >> SHOAL_MCLASS_PREV_SHIFT) & 0xff) {
		SHOAL_MAGLEV_CLASSES(MAGLEV_PREVIOUS_CASE)
	default:
		return maglev_any_size(&shoal_maglev_prev_v1, vip_id, hash);
	}
}

#endif /* SHOAL_MAGLEV_H */
