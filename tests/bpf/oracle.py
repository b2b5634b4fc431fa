"""An independent model of what the balancer must do with a frame, for the fuzz suites: plain
byte parsing in Python, written from the RFCs and docs/dataplane.md rather than from the C.

Verdicts: "pass" (left to the kernel, byte-identical), "balance" (encapsulated, XDP_TX),
"drop" (malformed L4 header to a VIP), "later" (a later fragment to a VIP address: sent after
its first fragment if one was seen, else passed unchanged)."""

from __future__ import annotations

import ipaddress
import struct

VLAN_TYPES = (0x8100, 0x88A8)
EXT_HEADERS = (0, 43, 44, 60)  # hop-by-hop, routing, fragment, destination options
EXT_MAX = 4
TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58

Vips = set[tuple[str, int, int]]  # (address, port, protocol number)


def _vip(vips: Vips, dst: bytes, port: int, proto: int) -> bool:
    return (str(ipaddress.ip_address(dst)), port, proto) in vips


def _l4(
    f: bytes, l4: int, end: int, proto: int, frag: str, family: int, dst: bytes, vips: Vips
) -> str:
    """l4: offset of the L4 header in the frame; end: end of the IP packet in the frame."""
    if frag == "later":
        return "later" if any(str(ipaddress.ip_address(dst)) == v[0] for v in vips) else "pass"
    if proto in (TCP, UDP):
        if l4 + 4 > end:
            return "pass"
        dport = struct.unpack_from("!H", f, l4 + 2)[0]
        bad = False
        if proto == TCP:
            bad = l4 + 20 > end or f[l4 + 12] >> 4 < 5 or l4 + (f[l4 + 12] >> 4) * 4 > end
        else:
            ulen = struct.unpack_from("!H", f, l4 + 4)[0] if l4 + 8 <= end else 0
            bad = l4 + 8 > end or ulen < 8 or (frag == "none" and l4 + ulen > end)
        if not _vip(vips, dst, dport, proto):
            return "pass"
        return "drop" if bad else "balance"
    if frag != "none" or proto != (ICMP if family == 4 else ICMP6) or l4 + 8 > len(f):
        return "pass"
    kind = f[l4]
    q = l4 + 8
    if family == 4:
        if kind not in (3, 11, 12) or q + 20 > len(f):
            return "pass"
        vihl = f[q]
        qproto = f[q + 9]
        qsrc = f[q + 12 : q + 16]
        off = struct.unpack_from("!H", f, q + 6)[0] & 0x1FFF
        if vihl >> 4 != 4 or vihl & 15 < 5 or qsrc != dst or qproto not in (TCP, UDP) or off:
            return "pass"
        ports = q + (vihl & 15) * 4
    else:
        if not 1 <= kind <= 4 or q + 40 > len(f):
            return "pass"
        qproto = f[q + 6]
        if f[q] >> 4 != 6 or qproto not in (TCP, UDP) or f[q + 8 : q + 24] != dst:
            return "pass"
        ports = q + 40
    if ports + 4 > len(f):
        return "pass"
    qsport = struct.unpack_from("!H", f, ports)[0]
    return "balance" if _vip(vips, dst, qsport, qproto) else "pass"


def classify(f: bytes, vips: Vips) -> str:
    if len(f) < 14:
        return "pass"
    etype, l3 = struct.unpack_from("!H", f, 12)[0], 14
    for _ in range(2):
        if etype not in VLAN_TYPES:
            break
        if l3 + 4 > len(f):
            return "pass"
        etype = struct.unpack_from("!H", f, l3 + 2)[0]
        l3 += 4
    if etype == 0x0800:
        if l3 + 20 > len(f) or f[l3] >> 4 != 4 or f[l3] & 15 < 5:
            return "pass"
        hlen = (f[l3] & 15) * 4
        tot = struct.unpack_from("!H", f, l3 + 2)[0]
        if tot < hlen or l3 + tot > len(f):
            return "pass"
        word = struct.unpack_from("!H", f, l3 + 6)[0]
        frag = "later" if word & 0x1FFF else "first" if word & 0x2000 else "none"
        return _l4(f, l3 + hlen, l3 + tot, f[l3 + 9], frag, 4, f[l3 + 16 : l3 + 20], vips)
    if etype == 0x86DD:
        if l3 + 40 > len(f) or f[l3] >> 4 != 6:
            return "pass"
        end = l3 + 40 + struct.unpack_from("!H", f, l3 + 4)[0]
        if end > len(f):
            return "pass"
        nh, off, frag = f[l3 + 6], l3 + 40, "none"
        for _ in range(EXT_MAX):
            if nh not in EXT_HEADERS:
                break
            if off + 8 > end:
                return "pass"
            if nh == 44:
                if frag != "none":
                    return "pass"
                word = struct.unpack_from("!H", f, off + 2)[0]
                frag = "later" if word & 0xFFF8 else "first" if word & 1 else "atomic"
                nh, off = f[off], off + 8
                if frag == "later":
                    break
                continue
            if nh == 43 and f[off + 3]:
                return "pass"
            nh, off = f[off], off + (f[off + 1] + 1) * 8
        if frag != "later" and nh in EXT_HEADERS:
            return "pass"
        if off > end:
            return "pass"
        frag = "none" if frag == "atomic" else frag
        return _l4(f, off, end, nh, frag, 6, f[l3 + 24 : l3 + 40], vips)
    return "pass"
