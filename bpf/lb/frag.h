/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Fragments to a VIP. Only the first fragment carries the ports, so it is balanced like any
 * packet of its flow, and its backend is remembered under what every fragment of the datagram
 * shares: (source, destination, identification, protocol). Later fragments follow that entry.
 * A later fragment with no entry (it overtook its first fragment, or the entry was evicted) is
 * left to the kernel, as before: the datagram is lost and the sender's retry handles it. The
 * map is an LRU, so a flood of first fragments only evicts older datagrams' entries; an entry
 * outlives its datagram harmlessly, since a reused identification starts with a first
 * fragment that overwrites it. */
#ifndef SHOAL_FRAG_H
#define SHOAL_FRAG_H

#include "lib/consts.h"
#include "lib/parse.h"
#include "lb_maps.h"
#include "shoal_abi.h"

static __always_inline void frag_key(const struct packet *pkt, struct shoal_frag_key *k)
{
	__builtin_memcpy(k->src, pkt->flow.src, 16);
	__builtin_memcpy(k->dst, pkt->flow.dst, 16);
	k->id = pkt->frag_id;
	k->proto = pkt->flow.proto;
	k->family = pkt->family;
}

/* A first fragment went to backend id: later ones go there too. */
static __always_inline void frag_remember(const struct packet *pkt, __u32 id, __u32 gen)
{
	struct shoal_frag_key k = {};
	frag_key(pkt, &k);
	struct shoal_frag_val v = {.backend_id = id, .backend_gen = gen};
	if (!bpf_map_update_elem(&shoal_frags_v1, &k, &v, BPF_ANY))
		count(SHOAL_CNT_FRAG_FIRST);
}

/* The backend of a later fragment's first fragment (its id in *id), or NULL. */
static __always_inline struct shoal_backend *frag_follow(const struct packet *pkt, __u32 *id)
{
	struct shoal_frag_key k = {};
	frag_key(pkt, &k);
	struct shoal_frag_val *v = bpf_map_lookup_elem(&shoal_frags_v1, &k);
	if (!v)
		return NULL;
	*id = v->backend_id;
	struct shoal_backend *be = bpf_map_lookup_elem(&shoal_backends_v1, id);
	if (!be || be->gen != v->backend_gen || !(be->flags & SHOAL_BE_F_USABLE))
		return NULL;
	count(SHOAL_CNT_FRAG_FOLLOW);
	return be;
}

#endif /* SHOAL_FRAG_H */
