"""Builds Ethernet frames for BPF_PROG_TEST_RUN (tests, benchmarks, `shoal dataplane trace
--probe`): IPv4/IPv6, TCP/UDP, optional 802.1Q tag, correct checksums."""

from __future__ import annotations

import ipaddress
import struct

__all__ = ["MAC_A", "MAC_B", "checksum", "tcp_frame", "udp_frame"]

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def _l3(src: str, dst: str, proto: int, l4: bytes) -> tuple[bytes, int]:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        pseudo = s.packed + d.packed + struct.pack("!BBH", 0, proto, len(l4))
        csum = checksum(pseudo + l4)
        hdr = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0x4000, 64, proto, 0, s.packed, d.packed
        )
        hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
        return hdr, csum
    pseudo = s.packed + d.packed + struct.pack("!I3xB", len(l4), proto)
    csum = checksum(pseudo + l4)
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(l4), proto, 64, s.packed, d.packed)
    return hdr, csum


def _frame(
    src: str,
    dst: str,
    proto: int,
    l4: bytes,
    csum_off: int,
    vlan: int | None,
    smac: bytes,
    dmac: bytes,
) -> bytes:
    l3, csum = _l3(src, dst, proto, l4)
    l4 = l4[:csum_off] + struct.pack("!H", csum) + l4[csum_off + 2 :]
    ethertype = 0x0800 if ipaddress.ip_address(src).version == 4 else 0x86DD
    if vlan is None:
        eth = dmac + smac + struct.pack("!H", ethertype)
    else:
        eth = dmac + smac + struct.pack("!HHH", 0x8100, vlan & 0xFFF, ethertype)
    return eth + l3 + l4


def tcp_frame(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: int = TCP_SYN,
    payload: bytes = b"",
    *,
    vlan: int | None = None,
    smac: bytes = MAC_A,
    dmac: bytes = MAC_B,
    seq: int = 1000,
) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
    return _frame(src, dst, 6, tcp, 16, vlan, smac, dmac)


def udp_frame(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    payload: bytes = b"x",
    *,
    vlan: int | None = None,
    smac: bytes = MAC_A,
    dmac: bytes = MAC_B,
) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return _frame(src, dst, 17, udp, 6, vlan, smac, dmac)
