/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* A listener's allowed_cidrs: the client address must lie in one of the VIP's prefixes. Only
 * VIPs flagged SHOAL_VIP_F_ACL look here, so VIPs without a list pay nothing. A flow the list
 * let through records the VIP's ACL word in its session way; its later packets skip the trie
 * while the word stays (a changed list changes the word, and then they are checked again). */
#ifndef SHOAL_ACL_H
#define SHOAL_ACL_H

#include "lib/consts.h"
#include "lib/parse.h"
#include "lb_maps.h"
#include "shoal_abi.h"

/* The VIP's ACL word (lb_maps.h). */
static __always_inline __u32 acl_word(__u32 vip_id)
{
	__u32 *word = bpf_map_lookup_elem(&shoal_acl_words_v1, &vip_id);
	return word ? *word : 0;
}

/* What a session way records of the word: its low 24 bits, 0 for none. A word whose low bits
 * are 0 is recorded as none, so its flows are checked on every packet: never trusted wrongly. */
static __always_inline __u32 acl_epoch(__u32 word)
{
	return word & SHOAL_ACL_EPOCH_MASK;
}

/* 1 when the packet's source lies in one of the VIP's allowed prefixes (word: acl_word). */
static __always_inline int acl_allows(const struct packet *pkt, __u32 vip_id, __u32 word)
{
	__u32 acl_id = 2 * vip_id + (word & 1);
	if (pkt->family == 4) {
		struct shoal_acl4_key k4 = {
			.prefixlen = 64, .acl_id = acl_id, .addr = pkt->flow.src[0]};
		return bpf_map_lookup_elem(&shoal_acl4_v1, &k4) != NULL;
	}
	struct shoal_acl6_key k6 = {.prefixlen = 160, .acl_id = acl_id};
	__builtin_memcpy(k6.addr, pkt->flow.src, 16);
	return bpf_map_lookup_elem(&shoal_acl6_v1, &k6) != NULL;
}

/* Counts a denied packet globally and for its VIP. */
static __always_inline void acl_count_drop(__u32 vip_id)
{
	count(SHOAL_CNT_DROP_ACL);
	__u64 *c = bpf_map_lookup_elem(&shoal_acl_drops_v1, &vip_id);
	if (c)
		*c += 1;
}

#endif /* SHOAL_ACL_H */
