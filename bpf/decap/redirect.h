/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Second chance, the backend side, and silence for SYNs nobody listens for. Both look at the
 * inner TCP packet of a tunnel the decap program is about to strip, and ask the kernel whether
 * a socket owns it (bpf_skc_lookup_tcp, in this host's namespace):
 *
 * - A non-SYN packet carrying a previous owner (shoal_abi.h) with no socket here but a
 *   listener or nothing (a valid SYN cookie ACK counts as ours) would get an RST from this
 *   kernel. It is sent on, still encapsulated, to the previous owner instead: outer
 *   destination rewritten, SHOAL_CHANCE_F_REDIRECTED set, out through the kernel's route and
 *   neighbour (bpf_redirect_neigh). A packet already redirected once is delivered here, so a
 *   flow can never loop, and a previous owner outside the peer prefixes is ignored, so a
 *   forged tunnel cannot use this host as a relay.
 * - With SHOAL_DECAP_F_SYN_NEEDS_LISTENER (L7 nodes), a SYN to a port no socket listens on is
 *   dropped instead of answered with RST: a client retries its SYN, and the retry reaches a
 *   live node once the L4 tier has taken this one out.
 *
 * Packets without the option pay one branch when the flag is off. */
#ifndef SHOAL_DECAP_REDIRECT_H
#define SHOAL_DECAP_REDIRECT_H

#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include "lib/consts.h"
#include "shoal_abi.h"
#include "decap_maps.h"
#include "tunnel.h"

#define REDIRECT_DELIVER -1 /* strip and hand to the kernel as usual */

#define OUTER4_DADDR (sizeof(struct ethhdr) + offsetof(struct iphdr, daddr))
#define OUTER4_CHECK (sizeof(struct ethhdr) + offsetof(struct iphdr, check))
#define OUTER6_DADDR (sizeof(struct ethhdr) + offsetof(struct ipv6hdr, daddr))

/* What a socket lookup says about the inner packet. */
enum redirect_owner {
	OWNER_NONE = 0,     /* no socket: this kernel would answer RST */
	OWNER_LISTENER = 1, /* only a listener (for a non-SYN: RST unless a valid cookie) */
	OWNER_SOCKET = 2,   /* an established, closing or half-open connection */
};

/* The inner TCP header and the lookup tuple; 0 when the inner packet is no whole TCP one. */
static __always_inline int redirect_inner_tcp(void *data, void *data_end, const struct tunnel *t,
					      struct bpf_sock_tuple *tuple, __u32 *tuple_len,
					      void **iph_out, __u32 *iph_len, struct tcphdr **th_out)
{
	void *inner = data + sizeof(struct ethhdr) + t->strip;
	struct tcphdr *th;
	if (t->inner_v6) {
		struct ipv6hdr *i6 = inner;
		if ((void *)(i6 + 1) > data_end || i6->nexthdr != IPPROTO_TCP)
			return 0;
		th = (void *)(i6 + 1);
		if ((void *)(th + 1) > data_end)
			return 0;
		__builtin_memcpy(tuple->ipv6.saddr, &i6->saddr, 16);
		__builtin_memcpy(tuple->ipv6.daddr, &i6->daddr, 16);
		tuple->ipv6.sport = th->source;
		tuple->ipv6.dport = th->dest;
		*tuple_len = sizeof(tuple->ipv6);
		*iph_len = sizeof(*i6);
	} else {
		struct iphdr *i4 = inner;
		if ((void *)(i4 + 1) > data_end || i4->protocol != IPPROTO_TCP || i4->ihl != 5 ||
		    (i4->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			return 0;
		th = (void *)(i4 + 1);
		if ((void *)(th + 1) > data_end)
			return 0;
		tuple->ipv4.saddr = i4->saddr;
		tuple->ipv4.daddr = i4->daddr;
		tuple->ipv4.sport = th->source;
		tuple->ipv4.dport = th->dest;
		*tuple_len = sizeof(tuple->ipv4);
		*iph_len = sizeof(*i4);
	}
	*iph_out = inner;
	*th_out = th;
	return 1;
}

static __always_inline enum redirect_owner redirect_owner(struct __sk_buff *skb,
							  struct bpf_sock_tuple *tuple,
							  __u32 tuple_len, void *iph, __u32 iph_len,
							  struct tcphdr *th)
{
	struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, tuple, tuple_len, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return OWNER_NONE;
	enum redirect_owner owner = OWNER_SOCKET;
	if (sk->state == BPF_TCP_LISTEN) {
		owner = OWNER_LISTENER;
		/* The last ACK of a handshake answered with a SYN cookie has only the listener. */
		if (th->ack && !th->syn && !th->rst &&
		    bpf_tcp_check_syncookie(sk, iph, iph_len, th, sizeof(*th)) == 0)
			owner = OWNER_SOCKET;
	}
	bpf_sk_release(sk);
	return owner;
}

/* Rewrites the outer destination to the previous owner, marks the option and sends the frame
 * on. Returns the tc verdict, or REDIRECT_DELIVER when it cannot (counted). */
static __always_inline int redirect_send_on(struct __sk_buff *skb, const struct tunnel *t)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 off = t->chance_off;
	if (t->outer_v6) {
		struct shoal_chance6 *c6 = data + sizeof(struct ethhdr) + IPV6_HLEN;
		if ((void *)(c6 + 1) > data_end)
			goto fail;
		__u32 prev[4];
		__builtin_memcpy(prev, c6->prev, 16);
		if (!decap_in_prefixes(&shoal_decap_peer4_v1, &shoal_decap_peer6_v1, prev, 1))
			goto foreign;
		__u8 flags = c6->flags | SHOAL_CHANCE_F_REDIRECTED;
		/* No checksum covers the outer IPv6 header or (zero UDP checksum) GUE over it. */
		if (bpf_skb_store_bytes(skb, OUTER6_DADDR, prev, 16, 0) ||
		    bpf_skb_store_bytes(skb, off + offsetof(struct shoal_chance6, flags), &flags, 1,
					0))
			goto fail;
	} else {
		struct iphdr *o4 = data + sizeof(struct ethhdr);
		struct shoal_chance4 *c4 = (void *)(o4 + 1);
		if ((void *)(c4 + 1) > data_end)
			goto fail;
		__u32 old_dst = o4->daddr, new_dst = c4->prev;
		if (!decap_in_prefixes(&shoal_decap_peer4_v1, &shoal_decap_peer6_v1, &new_dst, 0))
			goto foreign;
		/* flags and pad form one 16-bit word of the header checksum. */
		__u16 old_word = *(__u16 *)&c4->flags;
		__u8 word[2] = {c4->flags | SHOAL_CHANCE_F_REDIRECTED, c4->pad};
		__u16 new_word = *(__u16 *)word;
		if (bpf_skb_store_bytes(skb, OUTER4_DADDR, &new_dst, 4, 0) ||
		    bpf_l3_csum_replace(skb, OUTER4_CHECK, old_dst, new_dst, 4) ||
		    bpf_skb_store_bytes(skb, off + offsetof(struct shoal_chance4, flags), word, 2,
					0) ||
		    bpf_l3_csum_replace(skb, OUTER4_CHECK, old_word, new_word, 2))
			goto fail;
	}
	decap_count(SHOAL_DECAP_CHANCE_REDIRECT);
	return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
fail:
	decap_count(SHOAL_DECAP_CHANCE_ERROR);
	return REDIRECT_DELIVER;
foreign:
	decap_count(SHOAL_DECAP_CHANCE_FOREIGN);
	return REDIRECT_DELIVER;
}

/* The verdict for a tunnel to a local VIP before it is stripped: REDIRECT_DELIVER, or a tc
 * verdict (sent on to the previous owner, or a SYN dropped). */
static __always_inline int redirect_decide(struct __sk_buff *skb, const struct tunnel *t,
					   const struct shoal_decap_config *cfg)
{
	__u16 flags = cfg ? cfg->flags : 0;
	int chance = t->chance_off && !(flags & SHOAL_DECAP_F_NO_CHANCE);
	if (!chance && !(flags & SHOAL_DECAP_F_SYN_NEEDS_LISTENER))
		return REDIRECT_DELIVER;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct bpf_sock_tuple tuple = {};
	__u32 tuple_len, iph_len;
	void *iph;
	struct tcphdr *th;
	if (!redirect_inner_tcp(data, data_end, t, &tuple, &tuple_len, &iph, &iph_len, &th))
		return REDIRECT_DELIVER;
	if (th->syn && !th->ack) {
		if (!(flags & SHOAL_DECAP_F_SYN_NEEDS_LISTENER))
			return REDIRECT_DELIVER;
		if (redirect_owner(skb, &tuple, tuple_len, iph, iph_len, th) != OWNER_NONE)
			return REDIRECT_DELIVER;
		decap_count(SHOAL_DECAP_DROP_NO_LISTENER);
		return TC_ACT_SHOT;
	}
	if (!chance)
		return REDIRECT_DELIVER;
	__u8 redirected;
	__u32 flags_off = t->chance_off + (t->outer_v6 ? offsetof(struct shoal_chance6, flags)
						       : offsetof(struct shoal_chance4, flags));
	if (bpf_skb_load_bytes(skb, flags_off, &redirected, 1) ||
	    (redirected & SHOAL_CHANCE_F_REDIRECTED)) {
		decap_count(SHOAL_DECAP_CHANCE_LAST);
		return REDIRECT_DELIVER;
	}
	if (redirect_owner(skb, &tuple, tuple_len, iph, iph_len, th) == OWNER_SOCKET) {
		decap_count(SHOAL_DECAP_CHANCE_LOCAL);
		return REDIRECT_DELIVER;
	}
	return redirect_send_on(skb, t);
}

#endif /* SHOAL_DECAP_REDIRECT_H */
