"""Builds the ablation variants of lb.bpf.o (the record of the 2026-12-06 AMD runs, kept as run):
python ablation_variants.py nomod hash2w nocount hash2w+nomod hash2w+nomod+nocount (run 1)
python ablation_variants.py noflood hash2w+nomod+nocount+noflood fixed fixed+hash2w+nomod+nocount+noflood
(run 2 and 3; "fixed": inner Maglev maps of a fixed 1,022 entries, so the verifier inlines
both lookups of a pick; the harness loads a variant named fixed* without BPF_F_INNER_MAP)
"nomod": Maglev slot by multiply-shift instead of hash % size; "hash2w": the flow hash of an
IPv4 flow over two words (source address, ports) as Katran's get_packet_hash takes, for both
the set and the Maglev hash (valid for the bench's IPv4 flows only: not a candidate as is).
Each edit removes one piece of the program; "noflood" makes every new flow flooded. Reads the
tree's bpf/ from /work/main and writes /tmp/exp/v/lb-NAME.bpf.o."""
import shutil, subprocess, sys
edits = {
 "nohash": [("lib/flowhash.h", "	const __u32 *w = (const __u32 *)key;\n	__u32 h = seed;", "	const __u32 *w = (const __u32 *)key;\n	__u32 h = seed;\n	if (!src_only) return murmur_final(w[0] ^ w[8] ^ seed, 0);")],
 "nocount": [("lb/lb_maps.h", "	__u64 *c = bpf_map_lookup_elem(&shoal_counters_v2, &idx);\n	if (c)\n		*c += 1;", "	return;"),
             ("lb/lb_maps.h", "	struct shoal_traffic *t = bpf_map_lookup_elem(map, &idx);\n	if (t) {\n		t->packets += 1;\n		t->bytes += bytes;\n	}", "	return;")],
 "nomod": [("lb/maglev.h", "	slot = 1 + hash % *size;", "	slot = 1 + (__u32)(((__u64)hash * *size) >> 32);")],
 "hash2w": [("lib/flowhash.h", "	const __u32 *w = (const __u32 *)key;\n	__u32 h = seed;", "	const __u32 *w = (const __u32 *)key;\n	__u32 h = seed;\n	if (!src_only) return murmur_final(murmur_round(murmur_round(seed, w[0]), w[8]), 8);")],
 "fixed": [("lb/lb_maps.h", "	__uint(map_flags, BPF_F_INNER_MAP); /* inner maps of any size */\n	__uint(max_entries, 2);", "	__uint(max_entries, 1022);")],
 "base": [],
 "noacl": [("lb/acl.h", "	if (pkt->family == 4) {\n		struct shoal_acl4_key", "	return 1;\n	if (pkt->family == 4) {\n		struct shoal_acl4_key")],
 "novipstat": [("lb/lb.bpf.c", "	count_traffic(&shoal_vip_stats_v1, vip_id, pkt.l3_len);\n", "")],
 "nonewcnt": [("lb/lb.bpf.c", "		count(SHOAL_CNT_NEW_FLOWS);\n", ""), ("lb/lb.bpf.c", "		count(SHOAL_CNT_CACHE_SKIP_FLOOD);\n", "		;\n")],
 "noflood": [("lb/synguard.h", "	__u32 zero = 0;\n	struct shoal_flood_state *st", "	return 1;\n	__u32 zero = 0;\n	struct shoal_flood_state *st")],
}
for name in sys.argv[1:]:
    d = f"/tmp/exp/src-{name}"
    shutil.rmtree(d, ignore_errors=True); shutil.copytree("/work/main/bpf", d)
    for part in name.split("+"):
        for f, a, b in edits[part]:
            p = f"{d}/{f}"; s = open(p).read(); assert a in s, (part, f); open(p, "w").write(s.replace(a, b, 1))
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror", "-Wno-unused-function", "-I", d, "-I", "/usr/include/x86_64-linux-gnu", "-c", f"{d}/lb/lb.bpf.c", "-o", f"/tmp/exp/v/lb-{name}.bpf.o"], check=True)
    print("built", name)
