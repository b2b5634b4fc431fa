/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Protocol numbers, sizes and helper macros shared by every Shoal BPF program. */
#ifndef SHOAL_CONSTS_H
#define SHOAL_CONSTS_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define VLAN_HLEN 4
#define IPV4_HLEN 20
#define IPV6_HLEN 40
#define UDP_HLEN 8

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

#define SHOAL_TCP_FIN 0x01
#define SHOAL_TCP_SYN 0x02
#define SHOAL_TCP_RST 0x04
#define SHOAL_TCP_ACK 0x10

#define IPIP_TTL 64

/* Introduced in Linux 6.3; older uapi headers lack them. */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif

#ifndef offsetof
#define offsetof(type, member) __builtin_offsetof(type, member)
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#endif /* SHOAL_CONSTS_H */
