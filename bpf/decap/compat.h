/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Decapsulation on kernels older than this machine's: the hooks decap.bpf.c calls where kernels
 * differ, each with the path for kernels that lack the feature. Python probes the kernel once
 * (shoal.dataplane.features) and fixes the choice in .rodata before load, so the verifier keeps
 * only the path taken. */
#ifndef SHOAL_DECAP_COMPAT_H
#define SHOAL_DECAP_COMPAT_H

#include <linux/pkt_cls.h>
#include "lib/consts.h"
#include "shoal_abi.h"

/* Default: the newest kernels' path (what a load without probing gets). */
const volatile struct shoal_decap_features shoal_decap_features SEC(".rodata.compat") = {
	.adjust_room_decap_l3 = 1,
};

/* Removes len bytes after the Ethernet header of a tunnel whose inner packet is of the other
 * family than the outer header, and makes skb->protocol the inner family's (the stack
 * dispatches on it, not on the Ethernet type). Returns 0 or a negative error. */
static __always_inline long decap_strip_other_family(struct __sk_buff *skb, __u32 len,
						     int inner_v6)
{
	if (shoal_decap_features.adjust_room_decap_l3)
		return bpf_skb_adjust_room(skb, -(__s32)len, BPF_ADJ_ROOM_MAC,
					   inner_v6 ? BPF_F_ADJ_ROOM_DECAP_L3_IPV6
						    : BPF_F_ADJ_ROOM_DECAP_L3_IPV4);
	/* Before 6.3 adjust_room rejects those flags and never changes the protocol.
	 * bpf_skb_change_proto (4.8) does, moving the start of the L3 header by the 20 bytes IPv6's
	 * header is longer than IPv4's (adds them for 4 to 6, removes them for 6 to 4); what it adds
	 * or leaves is outer header, which adjust_room then removes with the rest. */
	const __s32 diff = IPV6_HLEN - IPV4_HLEN;
	if (bpf_skb_change_proto(skb, bpf_htons(inner_v6 ? ETH_P_IPV6 : ETH_P_IP), 0))
		return -1;
	return bpf_skb_adjust_room(skb, -(__s32)len + (inner_v6 ? -diff : diff), BPF_ADJ_ROOM_MAC,
				   0);
}

#endif /* SHOAL_DECAP_COMPAT_H */
