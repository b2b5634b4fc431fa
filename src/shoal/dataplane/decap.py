"""Backend-side decapsulation (tc ingress BPF) for hosts without the kernel's ipip/fou modules.

Attach it to the interface the load balancer's tunnels arrive on; the backend holds the VIP on
its loopback and answers the client directly. Production hosts may use kernel ipip/ip6tnl/fou
devices instead (docs/dataplane.md).

It strips only tunnels whose outer source lies in `sources` (the L4 tier's encapsulation
source prefixes) and whose inner destination lies in `local_vips` (what this host serves);
other tunnels reach the kernel untouched, and outer fragments are dropped, each counted.

Second chance (bpf/decap/redirect.h): a TCP packet whose tunnel names the flow's previous
owner and that has no socket here is sent on to that owner instead of meeting an RST, when the
owner lies in `peers` (the other backends and L7 nodes; empty: never sent on). With
`syn_needs_listener` (L7 nodes), a SYN to a VIP port nobody listens on is dropped, not
answered with RST, so the client retries it."""

from __future__ import annotations

import ctypes
from collections.abc import Iterable

from shoal import netns
from shoal.dataplane import abi, features, loader
from shoal.dataplane.config import Settings
from shoal.dataplane.maps import KernelMap, PerCpuMap, TypedMap
from shoal.dataplane.prefixes import IpNetwork, PrefixTries, parse_networks

__all__ = ["DEFAULT_SOURCES", "Decap"]

PROG_NAME = "shoal_decap"
# The L4 tier's default encapsulation sources (Settings.encap_source_v4/v6).
DEFAULT_SOURCES: tuple[IpNetwork, ...] = (
    Settings.model_fields["encap_source_v4"].default,
    Settings.model_fields["encap_source_v6"].default,
)


class Decap:
    """The decap program loaded once; attach() puts it on any number of interfaces."""

    def __init__(
        self,
        gue_port: int = 6080,
        instance: str | None = None,
        *,
        local_vips: Iterable[str | IpNetwork],
        sources: Iterable[str | IpNetwork] = DEFAULT_SOURCES,
        peers: Iterable[str | IpNetwork] = (),
        second_chance: bool = True,
        syn_needs_listener: bool = False,
        kernel: features.KernelFeatures | None = None,
    ) -> None:
        """kernel: the features to build for; default what this kernel has (probed once)."""
        pin_dir = loader.PIN_ROOT / f"decap-{instance}" if instance else None
        self.obj = loader.BpfObject(
            loader.bpf_object_path("decap"),
            pin_dir,
            rodata=features.decap_rodata(kernel or features.probe()),
        )
        self.sources = PrefixTries(
            self._trie("shoal_decap_src4_v1"), self._trie("shoal_decap_src6_v1")
        )
        self.local_vips = PrefixTries(
            self._trie("shoal_decap_vip4_v1"), self._trie("shoal_decap_vip6_v1")
        )
        self.peers = PrefixTries(
            self._trie("shoal_decap_peer4_v1"), self._trie("shoal_decap_peer6_v1")
        )
        self.configure(
            sources=parse_networks(sources),
            local_vips=parse_networks(local_vips),
            peers=parse_networks(peers),
        )
        self._config = TypedMap(
            KernelMap(self.obj.map_fd("shoal_decap_config_v1")), ctypes.c_uint32, abi.DecapConfig
        )
        self._gue_port = gue_port
        self.set_options(second_chance=second_chance, syn_needs_listener=syn_needs_listener)
        self._counters = PerCpuMap(
            KernelMap(self.obj.map_fd("shoal_decap_counters_v2"), percpu=True),
            ctypes.c_uint32,
            ctypes.c_uint64,
        )

    def set_options(self, *, second_chance: bool, syn_needs_listener: bool) -> None:
        """Second chance on or off; SYNs nobody listens for dropped (L7 nodes) or left to
        the kernel's RST (backends). Takes effect at the next packet."""
        flags = (0 if second_chance else abi.DECAP_F_NO_CHANCE) | (
            abi.DECAP_F_SYN_NEEDS_LISTENER if syn_needs_listener else 0
        )
        port = int.from_bytes(self._gue_port.to_bytes(2, "big"), "little")
        self._config.set(0, abi.DecapConfig(gue_port=port, flags=flags))

    def _trie(self, name: str) -> TypedMap:  # type: ignore[type-arg]
        key, value, _ = abi.DECAP_MAPS[name]
        return TypedMap(KernelMap(self.obj.map_fd(name)), key, value)

    def configure(
        self,
        *,
        sources: Iterable[IpNetwork] | None = None,
        local_vips: Iterable[IpNetwork] | None = None,
        peers: Iterable[IpNetwork] | None = None,
    ) -> None:
        """Replaces the allowed outer sources, the local VIP prefixes and/or the prefixes a
        packet may be sent on to (None: unchanged)."""
        if peers is not None:
            self.peers.replace(peers)
        if local_vips is not None:
            self.local_vips.replace(local_vips)
        if sources is not None:
            self.sources.replace(sources)

    def attach(self, ifname: str, netns_name: str | None = None) -> None:
        with netns.entered(netns_name):
            loader.attach_tc_ingress(netns.ifindex(ifname), self.obj.prog_fd(PROG_NAME))

    @staticmethod
    def detach(ifname: str, netns_name: str | None = None) -> bool:
        with netns.entered(netns_name):
            return loader.detach_tc_ingress(netns.ifindex(ifname))

    def counters(self) -> dict[str, int]:
        return {
            c.name.lower(): sum(v.value for v in self._counters.get(c)) for c in abi.DecapCounter
        }

    def close(self) -> None:
        self.obj.close()
