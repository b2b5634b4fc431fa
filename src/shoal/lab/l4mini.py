"""A one-node L4 lab: client, switch (bridge), one L4 node running the XDP balancer, and
backends that decapsulate with Shoal's tc program, hold the VIP on loopback and answer the
client directly (DSR). Used by `make demo` and the namespace tests.

    client 10.77.0.2 ──┐
    lb     10.77.0.1 ──┼── bridge ── backends 10.77.0.11.. (VIP 10.77.100.1 on lo)
                       ┘
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

from shoal.dataplane.balancer import Balancer
from shoal.dataplane.config import DataplaneConfig, parse_config
from shoal.dataplane.decap import Decap
from shoal.lab.topology import Topology

__all__ = ["L4MiniLab"]

SUBNET4, SUBNET6 = "10.77.0", "fd77::"
VIP4, VIP6 = "10.77.100.1", "fd77:100::1"
CLIENT4, LB4 = f"{SUBNET4}.2", f"{SUBNET4}.1"


@dataclass
class Host:
    name: str
    ns: str
    ip4: str
    ip6: str
    mac: str = ""


@dataclass
class L4MiniLab:
    """The lab; a subclass may put other hosts in front (`_edge_hosts`, `_edge`), give the
    L4 node and backends a default gateway and turn off the backends' second chance (see
    lab/pmtu.py)."""

    prefix: str = "shoal-mini"
    backends: int = 3
    session_cache_size: int = 65536
    max_vips: int = 256
    max_backends: int = 4096
    topo: Topology = field(init=False)
    lb: Balancer | None = field(default=None, init=False)
    decap: Decap | None = field(default=None, init=False)
    hosts: dict[str, Host] = field(default_factory=dict, init=False)
    # The L4 node is <subnet>.1, backend i is <subnet>.<10 + i>; the VIPs sit on their lo.
    subnet4: ClassVar[str] = SUBNET4
    subnet6: ClassVar[str] = SUBNET6
    vip4: ClassVar[str] = VIP4
    vip6: ClassVar[str] = VIP6
    gateway: ClassVar[tuple[str, str] | None] = None  # default route of the LB and backends
    second_chance: ClassVar[bool] = True  # backends hand on flows they do not own

    def up(self) -> Self:
        self.topo = Topology(self.prefix, Path(f"/tmp/{self.prefix}-logs"))
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    @property
    def backend_hosts(self) -> list[Host]:
        return [h for n, h in self.hosts.items() if n.startswith("b")]

    def _edge_hosts(self) -> list[tuple[str, str, str]]:
        """Hosts on the bridge besides the L4 node and the backends: the client."""
        return [("client", f"{self.subnet4}.2", f"{self.subnet6}2")]

    def _edge(self) -> None:
        """The client reaches the VIPs through the L4 node."""
        t, client = self.topo, self.hosts["client"]
        t.run(client.ns, "ip", "route", "add", f"{self.vip4}/32", "via", f"{self.subnet4}.1")
        t.run(client.ns, "ip", "-6", "route", "add", f"{self.vip6}/128", "via", f"{self.subnet6}1")
        # veth checksum offload would leave partial checksums in packets the LB tunnels.
        t.run(client.ns, "ethtool", "-K", "eth0", "tx", "off")

    def _build(self) -> None:
        t = self.topo
        sw = t.ns("sw")
        plan = [*self._edge_hosts(), ("lb", f"{self.subnet4}.1", f"{self.subnet6}1")]
        plan += [
            (f"b{i}", f"{self.subnet4}.{10 + i}", f"{self.subnet6}{10 + i}")
            for i in range(1, self.backends + 1)
        ]
        for name, ip4, ip6 in plan:
            ns = t.ns(name)
            t.link(ns, "eth0", sw, f"p-{name}")
            t.run(ns, "ip", "addr", "add", f"{ip4}/24", "dev", "eth0")
            t.run(ns, "ip", "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad")
            self.hosts[name] = Host(name, ns, ip4, ip6, t.mac(ns, "eth0"))
            if self.gateway and (name == "lb" or name.startswith("b")):
                t.run(ns, "ip", "route", "add", "default", "via", self.gateway[0])
                t.run(ns, "ip", "-6", "route", "add", "default", "via", self.gateway[1])
        t.bridge(sw, "br0", [f"p-{name}" for name, _, _ in plan])
        t.xdp_pass(sw, "p-lb")
        self._edge()

        lb = self.hosts["lb"]
        t.sysctl(
            lb.ns,
            net__ipv4__ip_forward=1,
            net__ipv6__conf__all__forwarding=1,
            net__ipv4__conf__all__rp_filter=0,
            net__ipv4__conf__eth0__rp_filter=0,
            net__ipv4__conf__all__send_redirects=0,
            net__ipv4__conf__eth0__send_redirects=0,
        )
        self.lb = Balancer.load(
            f"{self.prefix}-lb",
            session_cache_size=self.session_cache_size,
            max_vips=self.max_vips,
            max_backends=self.max_backends,
        )
        self.lb.attach("eth0", netns_name=lb.ns, mode="native")

        self.decap = Decap(
            local_vips=[f"{self.vip4}/32", f"{self.vip6}/128"],
            # second chance: the backends
            peers=[f"{self.subnet4}.0/24", f"{self.subnet6}/64"] if self.second_chance else (),
        )
        for host in self.backend_hosts:
            ns = host.ns
            t.run(ns, "ip", "addr", "add", f"{self.vip4}/32", "dev", "lo")
            t.run(ns, "ip", "addr", "add", f"{self.vip6}/128", "dev", "lo")
            t.sysctl(
                ns,
                net__ipv4__conf__all__arp_ignore=1,
                net__ipv4__conf__all__arp_announce=2,
                net__ipv4__conf__all__rp_filter=0,
                net__ipv4__conf__eth0__rp_filter=0,
            )
            self.decap.attach("eth0", ns)
            t.python(
                ns,
                f"http-{host.name}",
                "shoal.lab.servers",
                "http",
                "--name",
                host.name,
                "--port",
                "80",
            )
            t.python(
                ns,
                f"echo-{host.name}",
                "shoal.lab.servers",
                "echo",
                "--name",
                host.name,
                "--port",
                "7",
            )
        for host in self.backend_hosts:
            t.wait_tcp(host.ns, self.vip4, 80, timeout=120)  # slow starts: loaded or emulated
            t.wait_tcp(host.ns, self.vip4, 7, timeout=120)

    def config(
        self,
        backends: list[dict[str, object]] | None = None,
        *,
        family: int = 4,
        settings: dict[str, object] | None = None,
        **vip: object,
    ) -> DataplaneConfig:
        """The lab's usual VIP (HTTP on 80 and echo on 7) with the given backends (default:
        every backend host, in the VIP's address family) and data-plane settings."""
        if backends is None:
            backends = [{"address": h.ip4 if family == 4 else h.ip6} for h in self.backend_hosts]
        address = self.vip4 if family == 4 else self.vip6
        vips = [
            {"address": address, "port": port, "protocol": "tcp", "backends": backends, **vip}
            for port in (80, 7)
        ]
        doc: dict[str, object] = {"vips": vips}
        if settings is not None:
            doc["settings"] = settings
        return parse_config(doc)

    def close(self) -> None:
        if self.lb is not None:
            self.lb.close()
            Balancer.purge(f"{self.prefix}-lb")
            self.lb = None
        if self.decap is not None:
            self.decap.close()
            self.decap = None
        self.topo.close()

    def __enter__(self) -> Self:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.close()
