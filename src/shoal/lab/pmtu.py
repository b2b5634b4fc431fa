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

from dataclasses import dataclass, field
from pathlib import Path

from shoal.dataplane.balancer import Balancer
from shoal.dataplane.config import DataplaneConfig, parse_config
from shoal.dataplane.decap import Decap
from shoal.lab.topology import Topology

__all__ = ["PmtuLab"]

VIP4, VIP6 = "10.79.100.1", "fd79:100::1"
LB4, LB6 = "10.79.0.1", "fd79::1"
RT4, RT6 = "10.79.0.254", "fd79::fe"
CLIENT4, CLIENT6 = "10.79.1.2", "fd79:1::2"
SMALL_MTU = 1280  # the IPv6 minimum: one value for both families


@dataclass
class PmtuLab:
    prefix: str
    backends: int = 2
    topo: Topology = field(init=False)
    lb: Balancer | None = field(default=None, init=False)
    decap: Decap | None = field(default=None, init=False)
    ns: dict[str, str] = field(default_factory=dict, init=False)
    backend_ips: list[tuple[str, str]] = field(default_factory=list, init=False)

    def __enter__(self) -> PmtuLab:
        self.topo = Topology(self.prefix, Path(f"/tmp/{self.prefix}-logs"))
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        t = self.topo
        sw, rt, client, lb = t.ns("sw"), t.ns("rt"), t.ns("client"), t.ns("lb")
        self.ns.update(sw=sw, rt=rt, client=client, lb=lb)
        t.link(client, "eth0", rt, "eth1")
        t.run(rt, "ip", "link", "set", "eth1", "mtu", str(SMALL_MTU))
        t.run(client, "ip", "addr", "add", f"{CLIENT4}/24", "dev", "eth0")
        t.run(client, "ip", "addr", "add", f"{CLIENT6}/64", "dev", "eth0", "nodad")
        t.run(client, "ip", "route", "add", "default", "via", "10.79.1.1")
        t.run(client, "ip", "-6", "route", "add", "default", "via", "fd79:1::1")
        t.run(client, "ethtool", "-K", "eth0", "tx", "off")  # see l4mini: no partial sums
        t.run(rt, "ip", "addr", "add", "10.79.1.1/24", "dev", "eth1")
        t.run(rt, "ip", "addr", "add", "fd79:1::1/64", "dev", "eth1", "nodad")
        ports = ["p-rt", "p-lb"]
        t.link(rt, "eth0", sw, "p-rt")
        t.run(rt, "ip", "addr", "add", f"{RT4}/24", "dev", "eth0")
        t.run(rt, "ip", "addr", "add", f"{RT6}/64", "dev", "eth0", "nodad")
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
        t.link(lb, "eth0", sw, "p-lb")
        t.run(lb, "ip", "addr", "add", f"{LB4}/24", "dev", "eth0")
        t.run(lb, "ip", "addr", "add", f"{LB6}/64", "dev", "eth0", "nodad")
        t.run(lb, "ip", "route", "add", "default", "via", RT4)
        t.run(lb, "ip", "-6", "route", "add", "default", "via", RT6)
        t.sysctl(lb, net__ipv4__ip_forward=1, net__ipv6__conf__all__forwarding=1)
        for i in range(1, self.backends + 1):
            ns = t.ns(f"b{i}")
            self.ns[f"b{i}"] = ns
            ip4, ip6 = f"10.79.0.{10 + i}", f"fd79::{10 + i}"
            self.backend_ips.append((ip4, ip6))
            t.link(ns, "eth0", sw, f"p-b{i}")
            ports.append(f"p-b{i}")
            t.run(ns, "ip", "addr", "add", f"{ip4}/24", "dev", "eth0")
            t.run(ns, "ip", "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad")
            t.run(ns, "ip", "addr", "add", f"{VIP4}/32", "dev", "lo")
            t.run(ns, "ip", "addr", "add", f"{VIP6}/128", "dev", "lo")
            t.run(ns, "ip", "route", "add", "default", "via", RT4)
            t.run(ns, "ip", "-6", "route", "add", "default", "via", RT6)
            t.sysctl(
                ns,
                net__ipv4__conf__all__arp_ignore=1,
                net__ipv4__conf__all__arp_announce=2,
                net__ipv4__conf__all__rp_filter=0,
                net__ipv4__conf__eth0__rp_filter=0,
            )
        t.bridge(sw, "br0", ports)
        t.xdp_pass(sw, "p-lb")
        self.lb = Balancer.load(
            f"{self.prefix}-lb", session_cache_size=4096, max_vips=16, max_backends=64
        )
        self.lb.attach("eth0", netns_name=lb, mode="native")
        self.decap = Decap(local_vips=[f"{VIP4}/32", f"{VIP6}/128"])
        for i in range(1, self.backends + 1):
            name = f"b{i}"
            self.decap.attach("eth0", self.ns[name])
            t.python(self.ns[name], f"http-{name}", "shoal.lab.servers", "http", "--name", name)
            t.python(self.ns[name], f"echo-{name}", "shoal.lab.servers", "echo", "--port", "7")
        for i in range(1, self.backends + 1):
            # Generous: Python starts slowly on a loaded or emulated machine.
            t.wait_tcp(self.ns[f"b{i}"], VIP4, 80, timeout=120)
            t.wait_tcp(self.ns[f"b{i}"], VIP4, 7, timeout=120)

    def forget_path_mtus(self) -> None:
        """Drops every learnt path MTU (route exceptions), so each test starts from 1500."""
        for name, ns in self.ns.items():
            if name != "sw":
                self.topo.run(ns, "ip", "route", "flush", "cache")
                self.topo.run(ns, "ip", "-6", "route", "flush", "cache")

    def set_client_link_mtu(self, mtu: int) -> None:
        """The router's end of the client link (SMALL_MTU while the lab is up)."""
        self.topo.run(self.ns["rt"], "ip", "link", "set", "eth1", "mtu", str(mtu))

    def config(self, family: int = 4, **settings: object) -> DataplaneConfig:
        backends = [{"address": ip4 if family == 4 else ip6} for ip4, ip6 in self.backend_ips]
        vips = [
            {
                "address": VIP4 if family == 4 else VIP6,
                "port": port,
                "protocol": "tcp",
                "backends": backends,
            }
            for port in (80, 7)
        ]
        return parse_config({"settings": settings, "vips": vips})

    def close(self) -> None:
        if self.lb is not None:
            self.lb.close()
            Balancer.purge(f"{self.prefix}-lb")
            self.lb = None
        if self.decap is not None:
            self.decap.close()
            self.decap = None
        self.topo.close()
