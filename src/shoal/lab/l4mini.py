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
    prefix: str = "shoal-mini"
    backends: int = 3
    session_cache_size: int = 65536
    topo: Topology = field(init=False)
    lb: Balancer | None = field(default=None, init=False)
    decap: Decap | None = field(default=None, init=False)
    hosts: dict[str, Host] = field(default_factory=dict, init=False)

    def up(self) -> L4MiniLab:
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

    def _build(self) -> None:
        t = self.topo
        sw = t.ns("sw")
        plan = [("client", f"{SUBNET4}.2", f"{SUBNET6}2"), ("lb", LB4, f"{SUBNET6}1")]
        plan += [
            (f"b{i}", f"{SUBNET4}.{10 + i}", f"{SUBNET6}{10 + i}")
            for i in range(1, self.backends + 1)
        ]
        for name, ip4, ip6 in plan:
            ns = t.ns(name)
            t.link(ns, "eth0", sw, f"p-{name}")
            t.run(ns, "ip", "addr", "add", f"{ip4}/24", "dev", "eth0")
            t.run(ns, "ip", "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad")
            self.hosts[name] = Host(name, ns, ip4, ip6, t.mac(ns, "eth0"))
        t.bridge(sw, "br0", [f"p-{name}" for name, _, _ in plan])
        t.xdp_pass(sw, "p-lb")

        client = self.hosts["client"]
        t.run(client.ns, "ip", "route", "add", f"{VIP4}/32", "via", LB4)
        t.run(client.ns, "ip", "-6", "route", "add", f"{VIP6}/128", "via", f"{SUBNET6}1")
        # veth checksum offload would leave partial checksums in packets the LB tunnels.
        t.run(client.ns, "ethtool", "-K", "eth0", "tx", "off")

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
            max_vips=256,
            max_backends=4096,
        )
        self.lb.attach("eth0", netns_name=lb.ns, mode="native")

        self.decap = Decap(
            local_vips=[f"{VIP4}/32", f"{VIP6}/128"],
            peers=[f"{SUBNET4}.0/24", f"{SUBNET6}/64"],  # second chance: the backends
        )
        for host in self.backend_hosts:
            ns = host.ns
            t.run(ns, "ip", "addr", "add", f"{VIP4}/32", "dev", "lo")
            t.run(ns, "ip", "addr", "add", f"{VIP6}/128", "dev", "lo")
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
            t.wait_tcp(host.ns, VIP4, 80, timeout=120)  # slow starts: loaded or emulated
            t.wait_tcp(host.ns, VIP4, 7, timeout=120)

    def config(
        self, backends: list[dict[str, object]] | None = None, *, family: int = 4, **vip: object
    ) -> DataplaneConfig:
        """The lab's usual VIP (HTTP on 80 and echo on 7) with the given backends (default:
        every backend host, in the VIP's address family)."""
        if backends is None:
            backends = [{"address": h.ip4 if family == 4 else h.ip6} for h in self.backend_hosts]
        address = VIP4 if family == 4 else VIP6
        vips = [
            {"address": address, "port": port, "protocol": "tcp", "backends": backends, **vip}
            for port in (80, 7)
        ]
        return parse_config({"vips": vips})

    def close(self) -> None:
        if self.lb is not None:
            self.lb.close()
            Balancer.purge(f"{self.prefix}-lb")
            self.lb = None
        if self.decap is not None:
            self.decap.close()
            self.decap = None
        self.topo.close()

    def __enter__(self) -> L4MiniLab:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.close()
