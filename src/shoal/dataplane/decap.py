"""Backend-side decapsulation (tc ingress BPF) for hosts without the kernel's ipip/fou modules.

Attach it to the interface the load balancer's tunnels arrive on; the backend holds the VIP on
its loopback and answers the client directly. Production hosts may use kernel ipip/ip6tnl/fou
devices instead (docs/dataplane.md)."""

from __future__ import annotations

import ctypes

from shoal import netns
from shoal.dataplane import abi, loader
from shoal.dataplane.maps import KernelMap, PerCpuMap, TypedMap

__all__ = ["Decap"]

PROG_NAME = "shoal_decap"


class Decap:
    """The decap program loaded once; attach() puts it on any number of interfaces."""

    def __init__(self, gue_port: int = 6080, instance: str | None = None) -> None:
        pin_dir = loader.PIN_ROOT / f"decap-{instance}" if instance else None
        self.obj = loader.BpfObject(loader.bpf_object_path("decap"), pin_dir)
        config = TypedMap(
            KernelMap(self.obj.map_fd("shoal_decap_config_v1")), ctypes.c_uint32, abi.DecapConfig
        )
        config.set(
            0, abi.DecapConfig(gue_port=int.from_bytes(gue_port.to_bytes(2, "big"), "little"))
        )
        self._counters = PerCpuMap(
            KernelMap(self.obj.map_fd("shoal_decap_counters_v1"), percpu=True),
            ctypes.c_uint32,
            ctypes.c_uint64,
        )

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
