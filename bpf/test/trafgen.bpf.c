// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Shoal's live-frames traffic generator and its sink, one tool (src/shoal/bench/trafgen.py).
 *
 * shoal_trafgen is never attached: user space runs it with BPF_PROG_TEST_RUN and
 * BPF_F_TEST_XDP_LIVE_FRAMES, bound to an interface through ctx->ingress_ifindex, and XDP_TX
 * sends each frame out of that interface. The kernel recycles its pages with whatever the last
 * receiver wrote into them (a load balancer's encapsulation, say), so every run first copies
 * the template frame (IPv4, UDP or TCP, no options, minimum size) from the config map, then
 * gives it the next flow's source address and port and patches the checksums incrementally.
 *
 * shoal_trafgen_sink is attached to the receiving interface: it counts each frame by the last
 * byte of its IPv4 destination (a backend, behind a load balancer) and drops it, so measuring
 * costs one map write and no socket buffer. */
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include "lib/consts.h"
#include "lib/csum.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* A 64-byte Ethernet frame without its FCS: the only size this generator makes. */
#define TRAFGEN_FRAME_LEN 60

/* Written by user space before a run (numbers in host byte order). Flow i of a cycle of
 * `flows` uses source port sport_base + i % port_span and address saddr_base + i / port_span. */
struct trafgen_config {
	__u32 flows;      /* distinct flows, at least 1 */
	__u32 port_span;  /* source ports per source address, 1..65535 */
	__u32 saddr_base; /* first source address */
	__u32 sport_base; /* first source port */
	__u8 frame[TRAFGEN_FRAME_LEN]; /* the template, checksums valid */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct trafgen_config);
} shoal_trafgen_config SEC(".maps");

/* Frames generated on this CPU; also the position in the flow cycle. Per-CPU: a test run stays
 * on one CPU, so no atomics are needed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} shoal_trafgen_sent SEC(".maps");

/* Frames received by the sink: [0..255] by the last byte of the IPv4 destination, [256] for
 * frames that are not IPv4. Per-CPU, summed by user space. */
#define SINK_OTHER 256
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SINK_OTHER + 1);
	__type(key, __u32);
	__type(value, __u64);
} shoal_trafgen_received SEC(".maps");

/* One's-complement update of a checksum for one 16-bit word changing (RFC 1624, eqn. 3). */
static __always_inline __u16 csum_replace16(__u16 check, __u16 from, __u16 to)
{
	return csum_fold((__u16)~check + (__u32)(__u16)~from + to);
}

static __always_inline __u16 csum_replace32(__u16 check, __u32 from, __u32 to)
{
	check = csum_replace16(check, (__u16)from, (__u16)to);
	return csum_replace16(check, (__u16)(from >> 16), (__u16)(to >> 16));
}

SEC("xdp")
int shoal_trafgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__u32 zero = 0;

	struct trafgen_config *cfg = bpf_map_lookup_elem(&shoal_trafgen_config, &zero);
	__u64 *sent = bpf_map_lookup_elem(&shoal_trafgen_sent, &zero);
	if (!cfg || !sent || !cfg->flows || !cfg->port_span)
		return XDP_DROP;
	if (data + TRAFGEN_FRAME_LEN > data_end)
		return XDP_DROP;
	__builtin_memcpy(data, cfg->frame, TRAFGEN_FRAME_LEN);
	if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5)
		return XDP_DROP;

	__u32 flow = *sent % cfg->flows;
	*sent += 1;
	__u32 saddr = bpf_htonl(cfg->saddr_base + flow / cfg->port_span);
	__u16 sport = bpf_htons((__u16)(cfg->sport_base + flow % cfg->port_span));
	__u32 old_saddr = iph->saddr;
	__u16 *l4_check;
	__u16 *l4_sport;

	if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(iph + 1);
		if ((void *)(uh + 1) > data_end)
			return XDP_DROP;
		l4_check = &uh->check;
		l4_sport = &uh->source;
	} else if (iph->protocol == IPPROTO_TCP) {
		struct tcphdr *th = (void *)(iph + 1);
		if ((void *)(th + 1) > data_end)
			return XDP_DROP;
		l4_check = &th->check;
		l4_sport = &th->source;
	} else {
		return XDP_DROP;
	}

	/* UDP over IPv4 may carry no checksum (0): leave it so. The address is in the L4
	 * checksum's pseudo-header as well. */
	if (*l4_check || iph->protocol == IPPROTO_TCP) {
		__u16 check = csum_replace32(*l4_check, old_saddr, saddr);
		check = csum_replace16(check, *l4_sport, sport);
		if (!check && iph->protocol == IPPROTO_UDP)
			check = 0xffff; /* a computed 0 is sent as all ones in UDP */
		*l4_check = check;
	}
	iph->check = csum_replace32(iph->check, old_saddr, saddr);
	iph->saddr = saddr;
	*l4_sport = sport;
	return XDP_TX;
}

SEC("xdp")
int shoal_trafgen_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__u32 slot = SINK_OTHER;

	if ((void *)(iph + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP))
		slot = bpf_ntohl(iph->daddr) & 0xff;
	__u64 *count = bpf_map_lookup_elem(&shoal_trafgen_received, &slot);
	if (count)
		*count += 1;
	return XDP_DROP;
}
