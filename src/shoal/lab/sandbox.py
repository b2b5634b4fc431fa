"""A private namespace for BPF_PROG_TEST_RUN: one veth with fixed neighbours, so that
bpf_fib_lookup in the program under test gives the same next hops on every machine and no
packet can leave. Tests and benchmarks enter it on their own thread."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from shoal import netns

__all__ = ["SANDBOX_BACKENDS4", "SANDBOX_BACKENDS6", "SANDBOX_LB_MAC", "Sandbox", "sandbox"]

SANDBOX_LB_MAC = "02:00:00:00:aa:01"
SANDBOX_BACKENDS4 = {f"10.1.0.{i}": f"02:00:00:00:be:{i:02x}" for i in range(1, 65)}
SANDBOX_BACKENDS6 = {f"fd01::{i:x}": f"02:00:00:00:b6:{i:02x}" for i in range(1, 65)}


@dataclass(frozen=True)
class Sandbox:
    ns: str
    ifindex: int
    lb_mac: str


@contextlib.contextmanager
def sandbox(tag: str = "sandbox") -> Iterator[Sandbox]:
    """Creates the namespace, enters it on this thread, and removes it on exit."""
    name = f"shoal-{tag}-{os.getpid()}"
    netns.delete(name)
    netns.add(name)
    try:
        cmds = [
            [
                "ip",
                "link",
                "add",
                "lb0",
                "address",
                SANDBOX_LB_MAC,
                "type",
                "veth",
                "peer",
                "name",
                "lb1",
            ],
            ["ip", "link", "set", "lb0", "up"],
            ["ip", "link", "set", "lb1", "up"],
            ["ip", "addr", "add", "10.1.0.254/24", "dev", "lb0"],
            ["ip", "addr", "add", "fd01::fe/64", "dev", "lb0", "nodad"],
            ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
            ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
        ]
        for ip, mac in {**SANDBOX_BACKENDS4, **SANDBOX_BACKENDS6}.items():
            cmds.append(
                ["ip", "neigh", "replace", ip, "lladdr", mac, "nud", "permanent", "dev", "lb0"]
            )
        batch = "\n".join(" ".join(c[1:]) for c in cmds if c[0] == "ip")
        netns.run(["ip", "-batch", "-"], name, input_text=batch)
        for cmd in cmds:
            if cmd[0] != "ip":
                netns.run(cmd, name)
        with netns.entered(name):
            yield Sandbox(name, netns.ifindex("lb0"), SANDBOX_LB_MAC)
    finally:
        netns.delete(name)
