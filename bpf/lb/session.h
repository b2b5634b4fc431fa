/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Session cache: keeps an existing flow on its backend when the table changes. An entry is
 * honoured only while its backend is usable and still the same backend (generation), and only
 * while the flow is not idle for longer than its timeout: udp_timeout, tcp_timeout, or
 * tcp_closing_timeout once the flow has sent a FIN or an RST. An expired entry is hashed afresh
 * (the current pick), and a SYN is never placed by the cache (it is hashed fresh, and its
 * entry rewritten unless it already names that pick), so a reused 5-tuple never follows an old
 * connection's entry.
 *
 * The table (shoal_abi.h) is set-associative in plain array memory (shards of 30 KiB in the
 * kernel's direct map), one stripe per CPU as
 * Katran's per-CPU LRUs: a CPU reads and writes only its own stripe, so no lock and no shared
 * cache line, and a flow is served by the CPU its receive queue hashes it to (one whose
 * packets move to another CPU misses there and is hashed afresh). A lookup reads the set's
 * tags (one cache line: a miss costs no more) and compares the full key of a way whose tag
 * matches; an insert overwrites the flow's own way, else an empty or expired way, else the
 * least recently touched one. No kernel allocation on any path. */
#ifndef SHOAL_SESSION_H
#define SHOAL_SESSION_H

#include "lib/consts.h"
#include "lib/flowhash.h"
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

/* Signed, so a time written a moment ahead (by Python) never looks ancient. */
static __always_inline __s64 session_idle(__u64 now, __u64 touched)
{
	return (__s64)(now - (touched & SHOAL_FLOW_TIME));
}

/* The table generation an entry was written under (shoal_abi.h). */
static __always_inline __u32 session_gen(__u64 touched)
{
	return (touched >> SHOAL_FLOW_GEN_SHIFT) & SHOAL_FLOW_GEN_BITS;
}

/* The table's layout (shoal_abi.h), fixed by Python before load (Balancer.load: sharded from
 * Linux 6.8), so the verifier keeps one path: the sets of the two layouts are values of
 * different maps, and a branch between them would double every path after the lookup. */
const volatile __u32 shoal_sessions_sharded SEC(".rodata.layout") = 0;

/* The SYN marks (shoal_abi.h): one bucket per tag, shared by all CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SHOAL_SYN_MARKS);
	__type(key, __u32);
	__type(value, struct shoal_syn_mark);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_syn_marks_v1 SEC(".maps");

static __always_inline struct shoal_syn_mark *syn_mark_of(__u32 tag)
{
	__u32 idx = (__u32)(((__u64)tag * SHOAL_SYN_MARKS) >> 32);
	return bpf_map_lookup_elem(&shoal_syn_marks_v1, &idx);
}

/* A SYN hashed fresh: entries of its 5-tuple written before now, on any CPU, are an older
 * connection's. A later SYN in the same bucket overwrites the mark (then that older entry is
 * trusted again, as before marks: a collision within a handshake's round trip). */
static __always_inline void syn_mark(__u32 tag, __u64 now)
{
	struct shoal_syn_mark *m = syn_mark_of(tag);
	if (m) {
		m->tag = tag;
		m->time = (__u32)now;
	}
}

/* Whether a SYN of this flow came after the entry was last touched (the time only moves
 * forward while the flow sends, so a live flow's entry is never older than its own SYN). */
static __always_inline int syn_newer(__u32 tag, __u64 touched)
{
	struct shoal_syn_mark *m = syn_mark_of(tag);
	return m && m->tag == tag && (__s32)(m->time - (__u32)(touched & SHOAL_FLOW_TIME)) > 0;
}

/* The flow's set in this CPU's stripe and its tag in *tag, or NULL when the table is not set
 * up (no geometry) or this CPU has no stripe: then nothing is cached. */
static __always_inline struct shoal_session_set *session_set(const struct shoal_flow_key *key,
							      __u32 *tag)
{
	__u32 zero = 0;
	struct shoal_session_geom *g = bpf_map_lookup_elem(&shoal_session_geom_v1, &zero);
	if (!g)
		return NULL;
	__u32 cpu = bpf_get_smp_processor_id();
	if (cpu >= g->stripes)
		return NULL;
	__u32 h = flow_hash(key, g->seed, 0);
	*tag = h | 1;
	/* Multiply-shift instead of a modulo: no division, any set count. */
	__u32 idx = cpu * g->sets + (__u32)(((__u64)h * g->sets) >> 32);
	if (!shoal_sessions_sharded)
		return bpf_map_lookup_elem(&shoal_sessions_v2, &idx);
	__u32 shard = idx >> SHOAL_SESSION_SHARD_SHIFT;
	void *sets = bpf_map_lookup_elem(&shoal_session_shards_v1, &shard);
	if (!sets)
		return NULL; /* shards not created yet: nothing is cached */
	idx &= (1U << SHOAL_SESSION_SHARD_SHIFT) - 1;
	return bpf_map_lookup_elem(sets, &idx);
}

/* The 5-tuples are equal (a stored key's admitted bytes are not compared). */
static __always_inline int session_key_eq(const struct shoal_flow_key *a,
					  const struct shoal_flow_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	return !((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) |
		 ((x[4] ^ y[4]) & SHOAL_FLOW_KEY_WORD4_MASK));
}

/* The ACL epoch a stored way records (shoal_abi.h), 0 for none. */
static __always_inline __u32 session_admitted(const struct shoal_flow_key *stored)
{
	return ((const __u64 *)stored)[4] >> SHOAL_FLOW_ADMITTED_SHIFT;
}

/* Records epoch (lb/acl.h) in a stored way; one aligned store, the 5-tuple unchanged. */
static __always_inline void session_admit(struct shoal_flow_key *stored, __u32 epoch)
{
	__u64 *word = &((__u64 *)stored)[4];
	*word = (*word & SHOAL_FLOW_KEY_WORD4_MASK) |
		((__u64)(epoch & SHOAL_ACL_EPOCH_MASK) << SHOAL_FLOW_ADMITTED_SHIFT);
}

/* Returns the cached backend (its id in *id, its way's stored key in *stored), or NULL on a
 * miss, a stale or an expired entry, with the reason's counter in *miss: the caller counts it
 * once the packet proves to be VIP traffic, then hashes the flow afresh. set, tag: from
 * session_set; set may be NULL. */
static __always_inline struct shoal_backend *session_lookup(struct shoal_session_set *set,
							    __u32 tag,
							    const struct shoal_flow_key *key,
							    const struct shoal_config *cfg,
							    __u8 tcp_flags, __u32 *id, __u32 *miss,
							    struct shoal_flow_key **stored)
{
	*miss = SHOAL_CNT_CACHE_MISS;
	if (!set)
		return NULL;
	struct shoal_flow_val *v = NULL;
	__u32 found = 0;
#pragma unroll
	for (int w = 0; w < SHOAL_SESSION_WAYS; w++) {
		if (set->tag[w] == tag && session_key_eq(&set->way[w].key, key)) {
			v = &set->way[w].val;
			*stored = &set->way[w].key;
			found = w;
			break;
		}
	}
	if (!v)
		return NULL;
	*id = v->backend_id;
	struct shoal_backend *be = bpf_map_lookup_elem(&shoal_backends_v1, id);
	if (!be || be->gen != v->backend_gen || !(be->flags & SHOAL_BE_F_USABLE)) {
		*miss = SHOAL_CNT_CACHE_STALE;
		return NULL;
	}
	__u64 touched = v->touched;
	__u64 now = bpf_jiffies64();
	__u64 timeout = session_timeout(cfg, key->proto, touched);
	__s64 idle = session_idle(now, touched);
	if (timeout && idle > (__s64)timeout) {
		*miss = SHOAL_CNT_CACHE_EXPIRED;
		return NULL;
	}
	/* Written under the table the VIP has now, the entry names that table's pick: whatever
	 * connection it was written for, it sends this one where a fresh hash would. Otherwise
	 * it may be an older connection's of this 5-tuple (its packets went through this CPU,
	 * the new one's SYN through another): then a newer SYN of the flow means a miss. */
	__u32 gen = be->table_gen & SHOAL_FLOW_GEN_BITS;
	if (key->proto == IPPROTO_TCP && session_gen(touched) != gen && syn_newer(tag, touched)) {
		/* That older connection's entry is gone: from here the flow misses on this CPU as
		 * any flow new to it, and is placed as such (entry, or second chance). */
		if (found < SHOAL_SESSION_WAYS)
			set->tag[found] = 0;
		*miss = SHOAL_CNT_CACHE_REUSED;
		return NULL;
	}
	__u64 closing = session_closing(key->proto, tcp_flags);
	if (closing & ~touched) {
		v->touched = now | closing | (touched & ~SHOAL_FLOW_TIME);
		count(SHOAL_CNT_CACHE_CLOSING);
	} else if (idle > (__s64)(timeout >> SHOAL_TOUCH_SHIFT)) {
		v->touched = now | (touched & ~SHOAL_FLOW_TIME);
	}
	count(SHOAL_CNT_CACHE_HIT);
	return be;
}

/* A way an insert may take without evicting a live flow: empty, or idle past its timeout. */
static __always_inline int session_way_free(const struct shoal_config *cfg,
					    const struct shoal_session_way *way, __u64 now)
{
	__u64 touched = way->val.touched;
	if (!touched)
		return 1;
	__u64 timeout = session_timeout(cfg, way->key.proto, touched);
	return timeout && session_idle(now, touched) > (__s64)timeout;
}

/* A new entry for a freshly hashed flow, in set with tag (set NULL: both looked up here; a SYN
 * read no cache).
 * An RST ends its flow, so it gets none (a flood of RSTs for unknown flows cannot evict live
 * entries); a FIN's entry starts closing. The flow's own way is rewritten whole (a SYN that
 * names the same pick so refreshes it in place, one that names another pick never follows the
 * old entry); else the first empty or expired way is taken, else the least recently touched
 * (a busy flow's time is at most 1/16 of its timeout behind, so it is not that one).
 * admitted: the ACL epoch that let the flow through (lb/acl.h), 0 for none. */
static __always_inline void session_insert(struct shoal_session_set *set, __u32 tag,
					   const struct shoal_flow_key *key,
					   const struct shoal_config *cfg, __u8 tcp_flags,
					   __u32 backend_id, const struct shoal_backend *be, __u64 now,
					   __u32 admitted)
{
	if (key->proto == IPPROTO_TCP && (tcp_flags & SHOAL_TCP_RST))
		return;
	if (!set)
		set = session_set(key, &tag); /* a SYN read no cache */
	if (!set)
		return;
	if (key->proto == IPPROTO_TCP && (tcp_flags & (SHOAL_TCP_SYN | SHOAL_TCP_ACK)) == SHOAL_TCP_SYN)
		syn_mark(tag, now);
	__u32 pick = SHOAL_SESSION_WAYS, free = SHOAL_SESSION_WAYS, oldest = 0;
	__s64 oldest_idle = -1;
#pragma unroll
	for (int w = 0; w < SHOAL_SESSION_WAYS; w++) {
		struct shoal_session_way *way = &set->way[w];
		if (set->tag[w] == tag && session_key_eq(&way->key, key)) {
			pick = w;
			break;
		}
		if (free == SHOAL_SESSION_WAYS && (!set->tag[w] || session_way_free(cfg, way, now)))
			free = w;
		__s64 idle = session_idle(now, way->val.touched);
		if (idle > oldest_idle) {
			oldest_idle = idle;
			oldest = w;
		}
	}
	if (pick == SHOAL_SESSION_WAYS)
		pick = free < SHOAL_SESSION_WAYS ? free : oldest;
	if (pick >= SHOAL_SESSION_WAYS)
		return; /* for the verifier: pick is a way */
	struct shoal_session_way *way = &set->way[pick];
	/* The tag is cleared first and written last: a program that runs between these stores on
	 * this CPU sees no tag, a miss, never one flow's key with another flow's value. */
	*(volatile __u32 *)&set->tag[pick] = 0;
	barrier();
	way->key = *key;
	session_admit(&way->key, admitted);
	way->val.backend_id = backend_id;
	way->val.backend_gen = be->gen;
	way->val.touched = now | session_closing(key->proto, tcp_flags) |
			   ((__u64)(be->table_gen & SHOAL_FLOW_GEN_BITS) << SHOAL_FLOW_GEN_SHIFT);
	barrier();
	*(volatile __u32 *)&set->tag[pick] = tag;
	count(SHOAL_CNT_CACHE_INSERT);
}

#endif /* SHOAL_SESSION_H */
