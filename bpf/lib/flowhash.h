/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The seeded flow hash: MurmurHash3 (x86, 32-bit) over the 40-byte flow key read as ten
 * little-endian words. src/shoal/dataplane/flowhash.py computes the same value bit for bit, so
 * Python can say which backend a flow gets without sending a packet. */
#ifndef SHOAL_FLOWHASH_H
#define SHOAL_FLOWHASH_H

#include "consts.h"
#include "shoal_abi.h"

static __always_inline __u32 rotl32(__u32 x, __u32 r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 murmur_round(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = rotl32(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = rotl32(h, 13);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 murmur_final(__u32 h, __u32 len)
{
	h ^= len;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* Hash of the whole flow key, or of the client address only (source affinity). */
static __always_inline __u32 flow_hash(const struct shoal_flow_key *key, __u32 seed, int src_only)
{
	const __u32 *w = (const __u32 *)key;
	__u32 h = seed;
	if (src_only) {
#pragma unroll
		for (int i = 0; i < 4; i++)
			h = murmur_round(h, w[i]);
		return murmur_final(h, 16);
	}
#pragma unroll
	for (int i = 0; i < (int)(sizeof(*key) / 4); i++)
		h = murmur_round(h, w[i]);
	return murmur_final(h, sizeof(*key));
}

#endif /* SHOAL_FLOWHASH_H */
