"""Which L4 node the router sends each packet to: a packet socket on the router's fabric port
records, for every IPv4 TCP packet it forwards to one address, the next hop's MAC and the
flow. The lab's tests prove the router's ECMP hash with it (one flow, one node; many flows
and spoofed sources, every node) without trusting any counter of the nodes themselves."""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

from shoal import netns

__all__ = ["Forwarded", "RouterTap"]

ETH_P_ALL, ETH_P_IP = 0x0003, 0x0800
PACKET_OUTGOING = 4  # sll_pkttype of a frame this host sends
TCP_SYN, TCP_ACK = 0x02, 0x10


@dataclass(frozen=True)
class Forwarded:
    next_hop_mac: str
    src: str
    sport: int
    dport: int
    flags: int

    @property
    def syn(self) -> bool:
        return bool(self.flags & TCP_SYN) and not self.flags & TCP_ACK


@dataclass
class RouterTap:
    """Records what the router sends out of `ifname` (in `netns_name`) towards `dst`; at most
    `limit` packets are kept, so a flood cannot grow it without bound."""

    netns_name: str
    ifname: str
    dst: str
    limit: int = 200_000
    packets: list[Forwarded] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _sock: socket.socket | None = None

    def __enter__(self) -> RouterTap:
        with netns.entered(self.netns_name):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((self.ifname, ETH_P_ALL))
        sock.settimeout(0.1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="router-tap", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        if self._sock:
            self._sock.close()

    def _run(self) -> None:
        assert self._sock is not None
        want = socket.inet_aton(self.dst)
        while not self._stop.is_set():
            try:
                frame, addr = self._sock.recvfrom(128)
            except TimeoutError:
                continue
            except OSError:
                return
            if addr[2] != PACKET_OUTGOING or len(self.packets) >= self.limit:
                continue
            got = parse(frame, want)
            if got is not None:
                self.packets.append(got)

    def syns(self) -> list[Forwarded]:
        return [p for p in self.packets if p.syn]

    def nodes_of(self, sport: int, syn_only: bool = True) -> Counter[str]:
        """Next hops (MACs) taken by the packets of one client port."""
        return Counter(
            p.next_hop_mac for p in self.packets if p.sport == sport and (p.syn or not syn_only)
        )

    def by_node(self) -> Counter[str]:
        return Counter(p.next_hop_mac for p in self.packets)


def parse(frame: bytes, want_dst: bytes) -> Forwarded | None:
    """An Ethernet + IPv4 + TCP frame to want_dst, else None."""
    if len(frame) < 14 + 20 + 14 or struct.unpack_from("!H", frame, 12)[0] != ETH_P_IP:
        return None
    ihl = (frame[14] & 0x0F) * 4
    if frame[14 + 9] != socket.IPPROTO_TCP or frame[14 + 16 : 14 + 20] != want_dst:
        return None
    tcp = 14 + ihl
    if len(frame) < tcp + 14:
        return None
    sport, dport = struct.unpack_from("!HH", frame, tcp)
    return Forwarded(
        next_hop_mac=frame[0:6].hex(":"),
        src=socket.inet_ntoa(frame[14 + 12 : 14 + 16]),
        sport=sport,
        dport=dport,
        flags=frame[tcp + 13],
    )
