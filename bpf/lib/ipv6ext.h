/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* IPv6 extension headers between the fixed header and the L4 header (RFC 8200 section 4):
 * hop-by-hop options, routing, destination options and fragment, at most IPV6_EXT_MAX of them.
 * A longer chain, an unknown header (AH, ESP, ...) or a routing header with segments left (the
 * destination is not final) is left to the kernel. Included by parse.h. */
#ifndef SHOAL_IPV6EXT_H
#define SHOAL_IPV6EXT_H

#ifndef NEXTHDR_HOP
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST 60
#endif

/* RFC 8200 allows each of these once (destination options twice): four covers real chains. */
#define IPV6_EXT_MAX 4
#define IPV6_FRAG_OFFSET 0xFFF8 /* of the fragment header's offset word, host order */
#define IPV6_FRAG_MORE 0x0001

static __always_inline int ipv6_is_ext(__u8 nh)
{
	return nh == NEXTHDR_HOP || nh == NEXTHDR_ROUTING || nh == NEXTHDR_DEST ||
	       nh == NEXTHDR_FRAGMENT;
}

/* On entry pkt->flow.proto is the fixed header's next header and *off is 40; on PARSE_OK they
 * are the upper-layer protocol and its offset, and pkt->frag / frag_id describe a fragment
 * header if one was met. Offsets stay below 40 + IPV6_EXT_MAX * 2048, so the verifier sees
 * bounded packet offsets on every kernel. */
static __always_inline int ipv6_skip_ext(void *l3, void *data_end, struct packet *pkt,
					 __u32 *off_out)
{
	__u32 off = IPV6_HLEN;
	__u8 nh = pkt->flow.proto;
	int seen_frag = 0;
#pragma unroll
	for (int i = 0; i < IPV6_EXT_MAX; i++) {
		if (!ipv6_is_ext(nh))
			break;
		__u8 *h = l3 + off;
		if ((void *)(h + 8) > data_end || off + 8 > pkt->l3_len)
			return SHOAL_CNT_PASS_OTHER;
		if (nh == NEXTHDR_FRAGMENT) {
			if (seen_frag)
				return SHOAL_CNT_PASS_OTHER; /* two fragment headers */
			seen_frag = 1;
			__u16 word = bpf_ntohs(*(__u16 *)(h + 2));
			if (word & IPV6_FRAG_OFFSET)
				pkt->frag = FRAG_LATER;
			else if (word & IPV6_FRAG_MORE)
				pkt->frag = FRAG_FIRST;
			/* else an atomic fragment (RFC 6946): a whole packet, balanced as one */
			pkt->frag_id = *(__u32 *)(h + 4);
			nh = h[0];
			off += 8;
			if (pkt->frag == FRAG_LATER)
				break; /* what follows is payload, not headers */
			continue;
		}
		if (nh == NEXTHDR_ROUTING && h[3] != 0)
			return SHOAL_CNT_PASS_OTHER; /* segments left: not the final destination */
		nh = h[0];
		off += ((__u32)h[1] + 1) * 8;
	}
	if (pkt->frag != FRAG_LATER && ipv6_is_ext(nh))
		return SHOAL_CNT_PASS_OTHER; /* longer than IPV6_EXT_MAX */
	if (off > pkt->l3_len)
		return SHOAL_CNT_PASS_OTHER;
	pkt->flow.proto = nh;
	*off_out = off;
	return PARSE_OK;
}

#endif /* SHOAL_IPV6EXT_H */
