"""BIRD 2 configurations for the lab: a router that learns every VIP from every L4 node (host
routes inside the VIP pool only) and installs one multipath route (ECMP), and the L4 nodes'
speakers that announce what their agent puts in the VIP include files. Both sides run BFD, so
a hung node leaves the ECMP set in a few hundred milliseconds. The same shapes, with real
addresses, are documented for production in docs/bgp.md."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["GATE_FILE", "BfdTimers", "import_filter", "node_config", "router_config"]

GATE_FILE = "fate.conf"  # written by the fate watchdog (shoal.agents.fate.BirdGate)


@dataclass(frozen=True)
class BfdTimers:
    interval_ms: int = 100
    multiplier: int = 3


def import_filter(vip_prefixes: list[str]) -> str:
    """The router takes only host routes (/32) inside the VIP prefixes from the L4 nodes: a
    node that announces anything else (a stolen /32, a default route) is ignored."""
    nets = [ipaddress.ip_network(p) for p in vip_prefixes]
    v4 = [f"{n}{{32,32}}" for n in nets if n.version == 4]
    if not v4:
        return "import none;"
    return f"import filter {{ if net ~ [ {', '.join(v4)} ] then accept; reject; }};"


def router_config(
    router_id: str,
    local_as: int,
    peers: dict[str, str],
    peer_as: int,
    bfd: BfdTimers,
    vip_prefixes: list[str],
) -> str:
    """peers: name -> address of each L4 node; vip_prefixes: what they may announce."""
    sessions = "\n".join(
        f"""
protocol bgp {name} from l4_nodes {{
  neighbor {address} as {peer_as};
}}"""
        for name, address in sorted(peers.items())
    )
    return f"""# Shoal lab router: ECMP over every L4 node that announces a VIP.
router id {router_id};
log stderr all;

protocol device {{ scan time 10; }}

protocol kernel {{
  ipv4 {{ export all; }};
  merge paths on;          # one route with a next hop per L4 node
}}

protocol bfd {{
  interface "*" {{
    interval {bfd.interval_ms} ms;
    multiplier {bfd.multiplier};
  }};
}}

template bgp l4_nodes {{
  local as {local_as};
  bfd on;
  hold time 3;
  keepalive time 1;
  error wait time 1, 2;    # re-peer within seconds, not the default minute
  connect delay time 1;
  connect retry time 2;
  ipv4 {{ {import_filter(vip_prefixes)} export none; }};
}}
{sessions}
"""


def node_config(
    router_id: str, local_as: int, router: str, router_as: int, include_dir: str, bfd: BfdTimers
) -> str:
    return f"""# Shoal L4 node speaker: announces the VIPs the agent writes to {include_dir}.
router id {router_id};
log stderr all;

protocol device {{ scan time 10; }}

protocol static shoal_vips4 {{
  include "{include_dir}/{GATE_FILE}";   # `disabled yes;` while `shoal agent fate` withdraws
  ipv4;
  include "{include_dir}/vips4.conf";
}}

protocol bfd {{
  interface "*" {{
    interval {bfd.interval_ms} ms;
    multiplier {bfd.multiplier};
  }};
}}

protocol bgp uplink {{
  local as {local_as};
  neighbor {router} as {router_as};
  bfd on;
  hold time 3;
  keepalive time 1;
  error wait time 1, 2;
  connect delay time 1;
  connect retry time 2;
  ipv4 {{
    import none;
    # ORIGIN IGP on every node, so the router's paths tie and merge into one ECMP route.
    export filter {{
      if proto != "shoal_vips4" then reject;
      bgp_origin = ORIGIN_IGP;
      accept;
    }};
    next hop self;
  }};
}}
"""
