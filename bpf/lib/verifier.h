/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Helpers that keep code acceptable to older verifiers (Debian 12's 6.1), with no cost on newer
 * ones. Each says which verifier behaviour it works around. */
#ifndef SHOAL_VERIFIER_H
#define SHOAL_VERIFIER_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>

/* A 16-bit length field from the packet, in host order, with bounds the verifier knows.
 * bpf_ntohs() compiles to a byte swap, and 6.1's verifier leaves its result unbounded, so adding
 * it to a packet pointer is rejected ("math between pkt pointer and register with unbounded min
 * value"). clang knows the swap fits in 16 bits and drops a plain mask; the asm keeps it. */
static __always_inline __u32 ntohs_bounded(__u16 be)
{
	__u64 v = bpf_ntohs(be);
	asm volatile("%0 &= 0xffff" : "+r"(v));
	return (__u32)v;
}

#endif /* SHOAL_VERIFIER_H */
