"""A lab for path-MTU discovery through the L4 tier: the client sits behind a router whose
link towards it carries less than the backends' 1500 bytes, so the backends' direct (DSR)
replies need PMTUD, and the router's "fragmentation needed" / "packet too big" goes to the VIP,
that is to the L4 node, which must hand it to the backend that owns the flow.

    client 10.79.1.2 ── (1500 | 1280) rt 10.79.1.1 / 10.79.0.254 ──┐
                                           lb 10.79.0.1 ────────────┼── bridge
                                backends 10.79.0.11.. (VIP on lo) ──┘

The router's end of the client link has the small MTU; the client's end keeps 1500, so the
client advertises an MSS of 1460 and only the path, not the handshake, says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from shoal.lab.l4mini import Host, L4MiniLab

__all__ = ["PmtuLab"]

VIP4, VIP6 = "10.79.100.1", "fd79:100::1"
LB4, LB6 = "10.79.0.1", "fd79::1"
RT4, RT6 = "10.79.0.254", "fd79::fe"
CLIENT4, CLIENT6 = "10.79.1.2", "fd79:1::2"
SMALL_MTU = 1280  # the IPv6 minimum: one value for both families


@dataclass
class PmtuLab(L4MiniLab):
    """L4MiniLab with a router on the bridge in the client's place and the client behind it."""

    prefix: str = "shoal-pmtu"
    backends: int = 2
    session_cache_size: int = 4096
    max_vips: int = 16
    max_backends: int = 64
    subnet4: ClassVar[str] = "10.79.0"
    subnet6: ClassVar[str] = "fd79::"
    vip4: ClassVar[str] = VIP4
    vip6: ClassVar[str] = VIP6
    gateway: ClassVar[tuple[str, str] | None] = (RT4, RT6)
    second_chance: ClassVar[bool] = False

    @property
    def ns(self) -> dict[str, str]:
        """Each host's namespace by its name (client, rt, lb, b1, ...)."""
        return {name: host.ns for name, host in self.hosts.items()}

    def _edge_hosts(self) -> list[tuple[str, str, str]]:
        return [("rt", RT4, RT6)]

    def _edge(self) -> None:
        t, rt = self.topo, self.hosts["rt"].ns
        client = t.ns("client")
        self.hosts["client"] = Host("client", client, CLIENT4, CLIENT6)
        t.link(client, "eth0", rt, "eth1")
        t.run(rt, "ip", "link", "set", "eth1", "mtu", str(SMALL_MTU))
        t.run(client, "ip", "addr", "add", f"{CLIENT4}/24", "dev", "eth0")
        t.run(client, "ip", "addr", "add", f"{CLIENT6}/64", "dev", "eth0", "nodad")
        t.run(client, "ip", "route", "add", "default", "via", "10.79.1.1")
        t.run(client, "ip", "-6", "route", "add", "default", "via", "fd79:1::1")
        t.run(client, "ethtool", "-K", "eth0", "tx", "off")  # see l4mini: no partial sums
        t.run(rt, "ip", "addr", "add", "10.79.1.1/24", "dev", "eth1")
        t.run(rt, "ip", "addr", "add", "fd79:1::1/64", "dev", "eth1", "nodad")
        # The VIP is announced by the L4 node: errors about the backends' replies go there.
        t.run(rt, "ip", "route", "add", f"{VIP4}/32", "via", LB4)
        t.run(rt, "ip", "-6", "route", "add", f"{VIP6}/128", "via", LB6)
        t.sysctl(
            rt,
            net__ipv4__ip_forward=1,
            net__ipv6__conf__all__forwarding=1,
            net__ipv4__icmp_ratelimit=0,
            net__ipv6__icmp__ratelimit=0,
            net__ipv4__conf__all__rp_filter=0,
            net__ipv4__conf__eth0__rp_filter=0,
        )

    def forget_path_mtus(self) -> None:
        """Drops every learnt path MTU (route exceptions), so each test starts from 1500."""
        for ns in self.ns.values():
            self.topo.run(ns, "ip", "route", "flush", "cache")
            self.topo.run(ns, "ip", "-6", "route", "flush", "cache")

    def set_client_link_mtu(self, mtu: int) -> None:
        """The router's end of the client link (SMALL_MTU while the lab is up)."""
        self.topo.run(self.ns["rt"], "ip", "link", "set", "eth1", "mtu", str(mtu))
