// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Kernel feature probes: one program per feature where kernels differ, each run once through
 * BPF_PROG_TEST_RUN on a frame Python builds (shoal.dataplane.features); the return value is the
 * answer. Never attached to an interface. */
#include <linux/pkt_cls.h>
#include "lib/consts.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* 1 when bpf_skb_adjust_room accepts BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (Linux 6.3), 0 when it
 * rejects the flag (EINVAL). Run on IPv4 in IPv6: it removes the outer IPv6 header. */
SEC("tc")
int shoal_feature_adjust_room_decap_l3(struct __sk_buff *skb)
{
	return bpf_skb_adjust_room(skb, -IPV6_HLEN, BPF_ADJ_ROOM_MAC,
				   BPF_F_ADJ_ROOM_DECAP_L3_IPV4) == 0;
}
