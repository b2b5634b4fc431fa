/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The ABI between the BPF programs and Python (src/shoal/dataplane/abi.py mirrors every type here).
 * Rules: fixed-width fields, explicit padding, no bitfields, addresses and ports in network byte
 * order. Enums are append-only: never renumber, mark retired values unused. A layout change bumps
 * the _vN suffix of the map that carries it. */
#ifndef SHOAL_ABI_H
#define SHOAL_ABI_H

#include <linux/types.h>

/* VIP address pre-filter: a bitmap of 2^16 bits over a multiplicative hash of the destination
 * address, so traffic for other addresses passes without a hash-map lookup. */
#define SHOAL_VIP_FILTER_BITS 16
#define SHOAL_VIP_FILTER_WORDS ((1U << SHOAL_VIP_FILTER_BITS) / 64)
#define SHOAL_VIP_FILTER_MULT 0x9E3779B1U

/* Second chance (bpf/lb/chance.h, bpf/decap/redirect.h). When a VIP's table changed, a non-SYN
 * TCP packet that misses the session cache and whose Maglev slot belonged to another backend in
 * the VIP's previous table (shoal_maglev_prev_v1) carries that previous owner in its outer IP
 * header: an IPv4 option (outer IHL 7) or an IPv6 Destination Options header right after the
 * outer IPv6 header, for IPIP, IPv6 and GUE alike (the UDP header follows the option). Both use
 * RFC 4727's experimental option numbers, which a host that does not know them skips, so the
 * kernel's own ipip/ip6tnl/fou devices decapsulate such packets as usual (without the second
 * chance). The backend's decap program, for a packet without a local socket, rewrites the outer
 * destination to the previous owner, sets SHOAL_CHANCE_F_REDIRECTED (at most one redirect) and
 * sends it on, still encapsulated. The previous owner has the same family as the current pick. */
#define SHOAL_CHANCE_OPT4 0x5E /* IPv4 option: copy 0, class 2, number 30 (RFC 4727) */
#define SHOAL_CHANCE_OPT6 0x1E /* IPv6 option: skip if unknown, not changed en route (RFC 4727) */
#define SHOAL_CHANCE_F_REDIRECTED (1U << 0) /* already sent on once: deliver, never again */

/* The IPv4 option, 8 bytes, straight after the 20-byte outer header. */
struct shoal_chance4 {
	__u8 type;  /* SHOAL_CHANCE_OPT4 */
	__u8 len;   /* 8 */
	__u8 flags; /* SHOAL_CHANCE_F_* */
	__u8 pad;
	__u32 prev; /* previous owner, network byte order */
};

/* The IPv6 Destination Options header, 24 bytes: PadN (2 bytes) aligns the address. */
struct shoal_chance6 {
	__u8 nexthdr;  /* what follows: 4, 41 (IPIP, IPv6) or 17 (GUE) */
	__u8 hdrlen;   /* 2: 8-octet units after the first 8 */
	__u8 padn_type; /* 1 (PadN) */
	__u8 padn_len;  /* 0 */
	__u8 type;     /* SHOAL_CHANCE_OPT6 */
	__u8 len;      /* 18: flags, pad, address */
	__u8 flags;    /* SHOAL_CHANCE_F_* */
	__u8 pad;
	__u32 prev[4]; /* previous owner */
};

/* Default sizes; Python may override max_entries before load. */
#define SHOAL_MAX_VIPS 4096
#define SHOAL_MAX_BACKENDS 65536
#define SHOAL_DEFAULT_SESSIONS 4194304
#define SHOAL_MAX_ACL_PREFIXES 16384 /* per address family, over every VIP */

/* Maglev table classes (lb/maglev.h). A table of one of these sizes (maglev.TABLE_SIZES) lives
 * in its class's outer maps, whose inner maps have exactly that size: the verifier then inlines
 * both lookups of a pick, and the slot is a division by a constant. Any other size is class 0
 * (shoal_maglev_v1, inner maps of any size, the size read from slot 0). X(class, size). */
#define SHOAL_MAGLEV_CLASSES(X) X(1, 251) X(2, 1021) X(3, 4093) X(4, 16381) X(5, 65537)
/* shoal_mclass_v1, per VIP id: the class of its current table in bits 0-7, of its previous
 * table (second chance) in bits 8-15. */
#define SHOAL_MCLASS_PREV_SHIFT 8

/* shoal_vip_val.flags */
#define SHOAL_VIP_F_ANY_PORT (1U << 0) /* matches every port of (address, protocol) */
#define SHOAL_VIP_F_GUE (1U << 1)      /* encapsulate in GUE (UDP) instead of IPIP/IP6 */
#define SHOAL_VIP_F_SRC_HASH (1U << 2) /* hash on the client address only (source affinity) */
#define SHOAL_VIP_F_ACL (1U << 3)      /* only sources in the VIP's allowed prefixes (lb/acl.h) */
#define SHOAL_VIP_F_SRV6 (1U << 4)     /* IPv6 + SRH to the backend's SID (End.DX4/End.DX6 there) */

/* shoal_backend.flags */
#define SHOAL_BE_F_USABLE (1U << 0)   /* may receive packets (new flows only if in the table) */
#define SHOAL_BE_F_DRAINING (1U << 1) /* weight 0: keeps existing flows, out of the table */

/* shoal_config.flags */
#define SHOAL_CFG_F_FIB (1U << 0)    /* next hop from bpf_fib_lookup, gateway MAC as fallback */
#define SHOAL_CFG_F_GW_MAC (1U << 1) /* gw_mac is set */
#define SHOAL_CFG_F_NO_CHANCE (1U << 2) /* never add the previous owner (second chance off) */
#define SHOAL_CFG_F_FIB_PER_FLOW (1U << 3) /* FIB lookup per packet with the outer flow's fields,
					    * bypassing the next-hop cache: ECMP towards backends
					    * spreads flows (lb/nexthop.h) */

/* Default size of the fragment map (lb/frag.h). */
#define SHOAL_FRAG_ENTRIES 16384

/* Key of shoal_vips_v1. */
struct shoal_vip_key {
	__u32 addr[4]; /* IPv4 in addr[0], rest zero */
	__u16 port;    /* 0 for an any-port VIP */
	__u8 proto;    /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;   /* 4 or 6 */
};

/* Value of shoal_vips_v1. */
struct shoal_vip_val {
	__u32 vip_id; /* index into the Maglev table maps and shoal_vip_stats_v1 */
	__u32 flags;  /* SHOAL_VIP_F_* */
};

/* Value of shoal_backends_v1, indexed by backend id. One entry per (VIP, backend address). */
struct shoal_backend {
	__u32 addr[4];  /* IPv4 in addr[0], rest zero */
	__u8 family;    /* 4 or 6; 0 = free slot */
	__u8 flags;     /* SHOAL_BE_F_* */
	__u8 vip_flags; /* the owning VIP's SHOAL_VIP_F_*: a session hit needs no VIP lookup */
	__u8 pad;
	__u32 gen;    /* bumped on every reuse of the slot, so stale sessions are detected */
	__u32 vip_id; /* owning VIP */
	__u16 weight; /* as configured (Octavia: 0-256); 0 = draining */
	/* The owning VIP's table generation, bumped on each of its table changes (15 bits): a
	 * session entry written under the same generation names the table's own pick. */
	__u16 table_gen;
};

/* Key of the session cache: the 5-tuple as seen on the wire (40 bytes, hashed as 10 words).
 * A packet's key has admitted = 0. In a stored way, admitted holds the low 24 bits of the
 * VIP's ACL word (shoal_acl_words_v1) whose list last let the flow through, 0 for none: while
 * the word is unchanged, a hit needs no trie lookup (lb/acl.h). Keys compare without it. */
struct shoal_flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 admitted[3];
};

/* The flow key's fifth 64-bit word without admitted, and where admitted sits in it. */
#define SHOAL_FLOW_KEY_WORD4_MASK ((1ULL << 40) - 1)
#define SHOAL_FLOW_ADMITTED_SHIFT 40
#define SHOAL_ACL_EPOCH_MASK 0xffffffU

/* shoal_flow_val.touched: the flow has sent a FIN or an RST, so the short closing timeout
 * applies. A flag in the time's top bit (jiffies never get there) keeps the value at 16 bytes
 * (a way at 56). Bits 48-62 hold the backend's table_gen when the entry was written (jiffies
 * need 48 bits for 8,900 years at 1000 Hz); the time is the low 48 bits. */
#define SHOAL_FLOW_CLOSING (1ULL << 63)
#define SHOAL_FLOW_GEN_SHIFT 48
#define SHOAL_FLOW_GEN_BITS 0x7fffULL
#define SHOAL_FLOW_TIME ((1ULL << SHOAL_FLOW_GEN_SHIFT) - 1)

/* Value of the session cache. */
struct shoal_flow_val {
	__u32 backend_id;
	__u32 backend_gen; /* must equal shoal_backend.gen, or the entry is stale */
	__u64 touched;     /* jiffies of last use (| SHOAL_FLOW_CLOSING), for idle expiry */
};

/* The session cache (lb/session.h) is a set-associative table in array memory: one stripe of
 * sets per possible CPU, each set SHOAL_SESSION_WAYS ways, each way a whole flow key and its
 * value. A set starts with one 32-bit tag a way (the flow's set hash | 1; 0 = empty), so a
 * miss reads one cache line; a hit needs the tag and then the whole key to match, so two flows
 * whose tags collide never answer for each other. */
#define SHOAL_SESSION_WAYS 4

struct shoal_session_way {
	struct shoal_flow_key key;
	struct shoal_flow_val val;
};

/* One set (240 bytes). Set of a flow on CPU c: c * sets + its index in the stripe,
 * (flow_hash(key, seed) * sets) >> 32. Sharded layout (Linux >= 6.8): set i is entry i & 127
 * of shard i >> 7 of shoal_session_shards_v1. A shard of 128 sets (30 KiB) stays under the
 * size up to which the kernel allocates an array with kmalloc (32 KiB), so its memory is in
 * the kernel's direct map, mapped with huge pages: a set read costs no TLB miss, where one array
 * of millions of sets is vmalloc memory in 4 KiB pages and a cold set's read nearly always
 * misses the TLB as well. Flat layout (older kernels): set i is entry i of shoal_sessions_v2. */
#define SHOAL_SESSION_SHARD_SHIFT 7
struct shoal_session_set {
	__u32 tag[SHOAL_SESSION_WAYS]; /* flow_hash | 1 of each way's flow, 0 = empty */
	struct shoal_session_way way[SHOAL_SESSION_WAYS];
};

/* shoal_syn_marks_v1: the last TCP SYN hashed into each bucket, shared by every CPU. A session
 * entry lives in one CPU's stripe; a new connection that reuses an older one's 5-tuple may
 * send its SYN through another CPU than its later packets, whose stripe may still hold the
 * older connection's entry. An entry older than a SYN of its own flow is therefore not
 * trusted (lb/session.h). Indexed by the flow's session tag; tag 0 = none. */
#define SHOAL_SYN_MARKS 65536
struct shoal_syn_mark {
	__u32 tag;  /* the flow's session tag (flow_hash | 1) */
	__u32 time; /* jiffies, low 32 bits */
};

/* The single entry of shoal_session_geom_v1, written by Python when the table is created. */
struct shoal_session_geom {
	__u32 seed;    /* the set hash's own seed (random): a Maglev seed change keeps sessions */
	__u32 sets;    /* sets per CPU stripe; 0 = not set up, no session is kept */
	__u32 stripes; /* CPU stripes (possible CPUs); a CPU at or past it keeps no session */
	__u32 shard_shift; /* SHOAL_SESSION_SHARD_SHIFT: sharded; 0: flat (for Python: the program
			    * takes its layout from .rodata, lb/session.h) */
};

/* The single entry of shoal_config_v2 (v1 lacked the TCP timeouts). */
struct shoal_config {
	__u32 hash_seed;
	__u32 flags;           /* SHOAL_CFG_F_* */
	__u64 udp_timeout;     /* jiffies: UDP session entries older than this are ignored */
	__u64 flood_window;    /* jiffies: new-flow rate measurement window */
	__u64 flood_enter_rate; /* new flows/s per CPU above which flood mode starts; 0 = never */
	__u64 flood_exit_rate;  /* flood mode ends after the rate stays below this ... */
	__u64 flood_hold;       /* ... for this many jiffies */
	__u32 encap_src4;       /* outer IPv4 source: base ... */
	__u32 encap_src4_mask;  /* ... with these bits taken from the flow */
	__u32 encap_src6[4];    /* outer IPv6 source prefix; the last 32 bits come from the flow */
	__u8 gw_mac[6];         /* next hop when the FIB has none (or FIB lookups are off) */
	__u16 gue_port;         /* GUE destination port */
	__u16 mtu;              /* largest outer packet (L3) the uplink carries */
	__u16 icmp_rate;        /* too-big replies per second per CPU (lb/icmp.h); 0 = none */
	__u32 anyport_vips;     /* number of any-port VIPs: skip the second lookup when 0 */
	__u32 nh_epoch;         /* cached next hops are valid while they carry this epoch */
	__u32 hz;               /* jiffies per second (CONFIG_HZ), for rates */
	__u64 nh_max_age;       /* jiffies: a new flow refreshes an older cached next hop */
	__u64 tcp_timeout;      /* jiffies: idle TCP entries older than this are ignored; 0 = never */
	__u64 tcp_closing_timeout; /* jiffies: the same after a FIN or RST; 0 = never */
};

/* Key of shoal_frags_v1: what every fragment of one datagram shares (RFC 791, RFC 8200). */
struct shoal_frag_key {
	__u32 src[4];
	__u32 dst[4];
	__u32 id;     /* IPv4 identification (16 bits) or IPv6 fragment header identification */
	__u8 proto;   /* the fragment's upper-layer protocol */
	__u8 family;  /* 4 or 6 */
	__u16 pad;
};

/* Value of shoal_frags_v1: the backend the first fragment went to. */
struct shoal_frag_val {
	__u32 backend_id;
	__u32 backend_gen; /* must equal shoal_backend.gen, or the entry is stale */
};

/* Per-CPU budget of too-big replies, the single entry of shoal_icmp_rate_v1. */
struct shoal_icmp_rate {
	__u64 window_start; /* jiffies */
	__u64 sent;         /* replies since window_start */
};

/* Per-CPU flood detector, the single entry of shoal_flood_v1. Times are jiffies: the data
 * plane reads bpf_jiffies64() (about 4 ns here) rather than a clock source (about 35 ns). */
struct shoal_flood_state {
	__u64 window_start;
	__u64 window_flows;  /* new flows since window_start */
	__u64 calm_since;    /* start of the calm period while in flood mode; 0 = not calm */
	__u64 last_rate;     /* new flows/s over the last closed window */
	__u64 entries;       /* times flood mode started */
	__u64 exits;         /* times flood mode ended */
	__u64 changed;       /* time of the last mode change */
	__u64 last_flow;     /* time of the last new flow */
	__u32 mode;          /* 0 normal, 1 flood */
	__u32 pad;
};

/* Per-CPU next-hop cache, indexed by backend id: a FIB lookup costs more than the rest of the
 * fast path, so its answer is reused until user space bumps shoal_config.nh_epoch or a new flow
 * finds the entry older than shoal_config.nh_max_age. */
struct shoal_nexthop {
	__u8 dmac[6];
	__u8 smac[6];
	__u32 ifindex;
	__u32 epoch;     /* shoal_config.nh_epoch when filled; 0 = empty */
	__u64 filled;    /* jiffies when filled */
};


/* Key of shoal_acl4_v1, an LPM trie over (ACL id, client prefix): prefixlen counts the 32 bits
 * of acl_id (always all of them) plus the prefix length of addr. */
struct shoal_acl4_key {
	__u32 prefixlen; /* 32 + 0..32 */
	__u32 acl_id;    /* 2 * vip_id + (shoal_acl_words_v1[vip_id] & 1) */
	__u32 addr;      /* client prefix, network byte order */
};

/* Key of shoal_acl6_v1. */
struct shoal_acl6_key {
	__u32 prefixlen; /* 32 + 0..128 */
	__u32 acl_id;    /* 2 * vip_id + (shoal_acl_words_v1[vip_id] & 1) */
	__u32 addr[4];   /* client prefix, network byte order */
};

/* Per-VIP and per-backend traffic (per-CPU arrays). */
struct shoal_traffic {
	__u64 packets;
	__u64 bytes;
};

/* Indices of shoal_counters_v2 (per-CPU u64). Append only; the map holds SHOAL_CNT_SLOTS
 * entries so appending needs no new layout. */
enum shoal_counter {
	SHOAL_CNT_PASS_NOT_IP = 0,   /* not IPv4/IPv6 (ARP, LLDP, ...) */
	SHOAL_CNT_PASS_NOT_VIP,      /* IP, but no VIP matches */
	SHOAL_CNT_PASS_FRAGMENT,     /* IP fragment: ports unknown, left to the kernel */
	SHOAL_CNT_PASS_OTHER,        /* other L4 (ICMP, ...), IPv6 extension headers, truncated */
	SHOAL_CNT_TX,                /* encapsulated, XDP_TX */
	SHOAL_CNT_REDIRECT,          /* encapsulated, XDP_REDIRECT to another interface */
	SHOAL_CNT_DROP_NO_BACKEND,   /* VIP without a usable table */
	SHOAL_CNT_DROP_TOO_BIG,      /* larger than the MTU after encapsulation */
	SHOAL_CNT_DROP_ENCAP,        /* could not grow the packet head */
	SHOAL_CNT_DROP_NO_ROUTE,     /* FIB has no next hop and no gateway MAC is set */
	SHOAL_CNT_CACHE_HIT,         /* session cache hit on a usable backend */
	SHOAL_CNT_CACHE_MISS,        /* no session entry */
	SHOAL_CNT_CACHE_STALE,       /* entry pointed at a removed or unhealthy backend */
	SHOAL_CNT_CACHE_EXPIRED,     /* entry idle for longer than its timeout */
	SHOAL_CNT_NEW_FLOWS,         /* flows hashed fresh (SYN, misses): the flood detector's input */
	SHOAL_CNT_CACHE_INSERT,      /* entries written to the session cache */
	SHOAL_CNT_CACHE_SKIP_FLOOD,  /* inserts skipped because of flood mode */
	SHOAL_CNT_FIB_FALLBACK,      /* next hop from the gateway MAC instead of the FIB */
	SHOAL_CNT_PASS_NO_NEIGH,     /* encapsulated, handed to the kernel to resolve the neighbour */
	SHOAL_CNT_DROP_ACL,          /* source outside the VIP's allowed_cidrs */
	SHOAL_CNT_CACHE_CLOSING,     /* entries marked closing by a FIN or an RST */
	SHOAL_CNT_CHANCE,            /* sent with the previous owner in the outer header */
	SHOAL_CNT_ICMP_TOO_BIG,      /* too big after encapsulation: answered by frag-needed / PTB */
	SHOAL_CNT_ICMP_FORWARDED,    /* ICMP error quoting a VIP flow, sent to the flow's backend */
	SHOAL_CNT_FRAG_FIRST,        /* first fragment to a VIP: its backend remembered */
	SHOAL_CNT_FRAG_FOLLOW,       /* later fragment sent to its first fragment's backend */
	SHOAL_CNT_DROP_MALFORMED,    /* malformed L4 header to a VIP (TCP offset, UDP length) */
	SHOAL_CNT_CACHE_REUSED,      /* entries older than a SYN of their 5-tuple: hashed afresh */
	SHOAL_CNT_MAX,
};
#define SHOAL_CNT_SLOTS 64

/* Decap program (tc) counters, indices of shoal_decap_counters_v2. Append only; the map holds
 * SHOAL_DECAP_CNT_SLOTS entries so appending needs no new layout. */
enum shoal_decap_counter {
	SHOAL_DECAP_IPIP = 0,         /* IPv4 in IPv4 */
	SHOAL_DECAP_IP6IP,            /* IPv4 in IPv6 */
	SHOAL_DECAP_IP6IP6,           /* IPv6 in IPv6 */
	SHOAL_DECAP_GUE4,             /* GUE in IPv4 */
	SHOAL_DECAP_GUE6,             /* GUE in IPv6 */
	SHOAL_DECAP_ERROR,            /* bpf_skb_adjust_room failed */
	SHOAL_DECAP_PASS_FOREIGN_SRC, /* tunnel from outside the allowed sources: left to the kernel */
	SHOAL_DECAP_PASS_NOT_LOCAL,   /* inner destination is no local VIP: left to the kernel */
	SHOAL_DECAP_DROP_FRAGMENT,    /* outer header is a fragment (the L4 tier sets DF): dropped */
	SHOAL_DECAP_CHANCE_LOCAL,     /* carried a previous owner, but a local socket has the flow */
	SHOAL_DECAP_CHANCE_REDIRECT,  /* no local socket: sent on to the previous owner */
	SHOAL_DECAP_CHANCE_LAST,      /* already redirected once: delivered here, whatever comes */
	SHOAL_DECAP_CHANCE_ERROR,     /* could not send on (no route, bad option): delivered here */
	SHOAL_DECAP_DROP_NO_LISTENER, /* SYN to a local VIP port nobody listens on: dropped */
	SHOAL_DECAP_CHANCE_FOREIGN,   /* previous owner outside the peer prefixes: delivered here */
	SHOAL_DECAP_CNT_MAX,
};
#define SHOAL_DECAP_CNT_SLOTS 32

/* The single entry of shoal_decap_config_v1. */
struct shoal_decap_config {
	__u16 gue_port; /* network byte order; 0 = GUE off */
	__u16 flags;    /* SHOAL_DECAP_F_* (was padding: zero keeps the old behaviour) */
	__u32 pad2;
};

/* shoal_decap_config.flags */
#define SHOAL_DECAP_F_NO_CHANCE (1U << 0) /* never send a packet on to its previous owner */
/* Drop a TCP SYN to a local VIP whose port has no listening socket instead of letting the
 * kernel answer RST: a proxy node whose HAProxy is down stays silent, so clients retry their
 * SYN, which the L4 tier sends elsewhere once it sees the node dead. */
#define SHOAL_DECAP_F_SYN_NEEDS_LISTENER (1U << 1)

/* Default size of each decap prefix trie; Python may override max_entries before load. */
#define SHOAL_DECAP_MAX_PREFIXES 1024

/* Key of the IPv4 prefix tries (shoal_decap_src4_v1, _vip4_v1, _peer4_v1): an LPM trie key,
 * prefixlen bits of addr significant. */
struct shoal_lpm4_key {
	__u32 prefixlen; /* 0..32 */
	__u32 addr;      /* network byte order */
};

/* Key of the IPv6 prefix tries (shoal_decap_src6_v1, _vip6_v1, _peer6_v1). */
struct shoal_lpm6_key {
	__u32 prefixlen; /* 0..128 */
	__u32 addr[4];   /* network byte order */
};

/* Kernel features of the decap program, fixed at load time in its .rodata.compat section from
 * what shoal.dataplane.features probed (the verifier then prunes the path not taken). */
struct shoal_decap_features {
	__u32 adjust_room_decap_l3; /* 1: bpf_skb_adjust_room takes BPF_F_ADJ_ROOM_DECAP_L3_* (6.3+) */
};

#endif /* SHOAL_ABI_H */
