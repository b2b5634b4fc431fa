/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Internet checksum of a freshly written IPv4 header (no options, or the 8-byte second-chance
 * option). */
#ifndef SHOAL_CSUM_H
#define SHOAL_CSUM_H

#include <linux/ip.h>
#include "consts.h"

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* iph->check must be 0 on entry. */
static __always_inline __u16 ipv4_header_csum(const struct iphdr *iph)
{
	const __u16 *w = (const __u16 *)iph;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < IPV4_HLEN / 2; i++)
		sum += w[i];
	return csum_fold(sum);
}

/* The same over a 28-byte header (IHL 7); the caller has checked those bytes are there. */
static __always_inline __u16 ipv4_header_csum_opt(const struct iphdr *iph)
{
	const __u16 *w = (const __u16 *)iph;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < (IPV4_HLEN + 8) / 2; i++)
		sum += w[i];
	return csum_fold(sum);
}

#endif /* SHOAL_CSUM_H */
