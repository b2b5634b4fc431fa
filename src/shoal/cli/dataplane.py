"""`shoal dataplane`: run the L4 data plane by hand, without the controller."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from shoal import netns
from shoal.cli.common import (
    Format,
    console,
    fail,
    handle_errors,
    print_rows,
    require_root,
    state_dir,
)
from shoal.dataplane import abi
from shoal.dataplane.balancer import Balancer
from shoal.dataplane.config import DataplaneConfig, load_config, parse_config
from shoal.dataplane.decap import DEFAULT_SOURCES, Decap
from shoal.dataplane.prefixes import parse_networks

app = typer.Typer(
    help="Attach the XDP load balancer, apply VIPs and backends, inspect it.", no_args_is_help=True
)
decap_app = typer.Typer(
    help="Backend-side decapsulation (tc) for hosts without ipip/fou.", no_args_is_help=True
)
app.add_typer(decap_app, name="decap")

Instance = Annotated[str, typer.Option("--instance", "-i", help="data plane instance name")]
Netns = Annotated[str | None, typer.Option("--netns", help="network namespace of the interface")]
Fmt = Annotated[Format, typer.Option("-f", "--format", help="output format")]


def _applied_path(instance: str) -> Path:
    return state_dir() / "dataplane" / f"{instance}.json"


def _save_applied(instance: str, config: DataplaneConfig) -> None:
    """Keeps the last applied config (atomically) so later commands can change one VIP."""
    path = _applied_path(instance)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".applied-")
    with os.fdopen(fd, "w") as f:
        f.write(config.model_dump_json(indent=2))
    os.replace(tmp, path)


def _load_applied(instance: str) -> DataplaneConfig | None:
    path = _applied_path(instance)
    if not path.exists():
        return None
    return parse_config(json.loads(path.read_text()), str(path))


def _apply(lb: Balancer, instance: str, config: DataplaneConfig) -> None:
    report = lb.apply(config)
    _save_applied(instance, config)
    console.print(f"applied: {report.summary()}")


@app.command()
@handle_errors
def attach(
    interface: Annotated[str, typer.Argument(help="interface to attach XDP to")],
    instance: Instance = "default",
    netns_name: Netns = None,
    mode: Annotated[str, typer.Option(help="XDP mode: auto, native or generic")] = "auto",
    config: Annotated[Path | None, typer.Option("--config", "-c", help="VIP file to apply")] = None,
    session_cache_size: Annotated[int, typer.Option(help="session cache entries")] = (
        abi.DEFAULT_SESSIONS
    ),
    max_vips: Annotated[int, typer.Option(help="VIP capacity")] = abi.MAX_VIPS,
    max_backends: Annotated[int, typer.Option(help="backend capacity")] = abi.MAX_BACKENDS,
) -> None:
    """Load the program (maps pinned per instance) and attach it; replaces a running one
    in place, keeping its sessions."""
    require_root("attaching XDP")
    netns.ifindex(interface, netns_name)  # an unknown interface fails before anything loads
    desired = load_config(config) if config else _load_applied(instance)
    check = Balancer.adopt(instance, interface, netns_name=netns_name)
    if check.adopted:
        console.print(f"the running program's maps were not the pins; adopted {check.adopted}")
    if check.diverged:
        console.print(f"[red]maps the new program cannot take over: {check.diverged}[/red]")
    with Balancer.load(
        instance,
        session_cache_size=session_cache_size,
        max_vips=max_vips,
        max_backends=max_backends,
    ) as lb:
        if desired is not None:
            _apply(lb, instance, desired)
        used = lb.attach(interface, netns_name=netns_name, mode=mode)
    console.print(f"attached shoal_lb to {interface} ({used} XDP), instance {instance}")


@app.command()
@handle_errors
def detach(interface: str, netns_name: Netns = None) -> None:
    """Detach the XDP program from an interface (pinned maps stay; see purge)."""
    require_root("detaching XDP")
    if Balancer.detach(interface, netns_name=netns_name):
        console.print(f"detached XDP from {interface}")
    else:
        console.print(f"no XDP program on {interface}")


@app.command()
@handle_errors
def apply(
    file: Annotated[Path, typer.Argument(help="VIP/backend file, YAML or JSON")],
    instance: Instance = "default",
    dry_run: Annotated[bool, typer.Option(help="validate only")] = False,
) -> None:
    """Make the data plane hold exactly the VIPs in FILE (validated first: all or nothing)."""
    config = load_config(file)
    if dry_run:
        console.print(f"{file}: valid ({len(config.vips)} VIPs)")
        return
    require_root("changing the data plane")
    with Balancer.open(instance) as lb:
        _apply(lb, instance, config)


@app.command()
@handle_errors
def show(instance: Instance = "default", fmt: Fmt = Format.table) -> None:
    """VIPs, backends, their state and traffic."""
    with Balancer.open(instance) as lb:
        status = lb.status()
    rows = []
    for vip in status:
        table = f"{vip.table_size} slots" if vip.table_size else "none: dropping new flows"
        if not vip.backends:
            rows.append(
                {
                    "vip": vip.name,
                    "table": table,
                    "backend": "-",
                    "weight": "-",
                    "state": "-",
                    "packets": vip.packets,
                    "bytes": vip.bytes,
                    "acl_drops": vip.acl_drops,
                }
            )
        for be in vip.backends:
            rows.append(
                {
                    "vip": vip.name,
                    "table": table,
                    "backend": be.address,
                    "weight": be.weight,
                    "state": be.state,
                    "packets": be.packets,
                    "bytes": be.bytes,
                    "acl_drops": vip.acl_drops,
                }
            )
    print_rows(rows, fmt, "VIPs and backends")


@app.command()
@handle_errors
def counters(instance: Instance = "default", fmt: Fmt = Format.table) -> None:
    """Verdicts, session cache and flood-mode counters, summed over CPUs."""
    with Balancer.open(instance) as lb:
        rows = [{"counter": k, "value": v} for k, v in lb.counters().items()]
        flood = lb.flood_status()
        rows += [
            {"counter": "flood_mode", "value": "on" if flood.active else "off"},
            {"counter": "flood_entries", "value": flood.entries},
            {"counter": "flood_exits", "value": flood.exits},
            {"counter": "new_flow_rate_per_cpu", "value": max(flood.rate, default=0)},
        ]
        print_rows(rows, fmt, "counters")


@app.command()
@handle_errors
def trace(
    src: Annotated[str, typer.Argument(help="client address")],
    sport: Annotated[int, typer.Argument(help="client port")],
    dst: Annotated[str, typer.Argument(help="VIP address")],
    dport: Annotated[int, typer.Argument(help="VIP port")],
    protocol: Annotated[str, typer.Option("--protocol", "-p")] = "tcp",
    instance: Instance = "default",
    fmt: Fmt = Format.table,
) -> None:
    """Which backend a flow reaches and why (session cache or Maglev slot), sending nothing."""
    if protocol not in ("tcp", "udp"):
        fail(f"protocol must be tcp or udp, not {protocol!r}", 2)
    with Balancer.open(instance) as lb:
        try:
            result = lb.trace(src, sport, dst, dport, protocol)
        except ValueError as exc:
            fail(str(exc), 2)
            return
    rows = [{"field": k, "value": v} for k, v in vars(result).items() if v is not None]
    print_rows(rows, fmt, "flow trace")


@app.command()
@handle_errors
def purge(instance: Instance = "default") -> None:
    """Unpin an instance's maps (drops its sessions and counters). Detach it first."""
    require_root("purging pinned maps")
    if Balancer.purge(instance):
        _applied_path(instance).unlink(missing_ok=True)
        console.print(f"purged instance {instance}")
    else:
        console.print(f"no instance {instance}")


@decap_app.command("attach")
@handle_errors
def decap_attach(
    interface: str,
    vip: Annotated[
        list[str],
        typer.Option(help="prefix of the VIPs this host serves (inner destinations); repeatable"),
    ],
    netns_name: Netns = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            help="prefix tunnels may come from (the L4 tier's encap_source_v4/v6); repeatable "
            "[default: 172.16.0.0/16 and fd00:5ea1::/96]"
        ),
    ] = None,
    gue_port: Annotated[int, typer.Option(help="UDP port carrying GUE")] = 6080,
    peer: Annotated[
        list[str] | None,
        typer.Option(
            help="prefix of the other backends / L7 nodes a packet may be sent on to "
            "(second chance); repeatable [default: none, nothing is sent on]"
        ),
    ] = None,
    second_chance: Annotated[
        bool,
        typer.Option(
            help="send a packet that names its flow's previous owner and has no socket here "
            "on to that owner instead of answering RST"
        ),
    ] = True,
    syn_needs_listener: Annotated[
        bool,
        typer.Option(
            help="drop a SYN to a VIP port nobody listens on instead of answering RST "
            "(proxy nodes: clients retry it elsewhere)"
        ),
    ] = False,
) -> None:
    """Decapsulate Shoal's tunnels arriving on INTERFACE (tc ingress): only from the L4
    tier's sources, only to this host's VIPs."""
    require_root("attaching tc programs")
    try:
        vips = parse_networks(vip)
        sources = parse_networks(source) if source else list(DEFAULT_SOURCES)
        peers = parse_networks(peer or [])
    except ValueError as exc:
        fail(f"decap: {exc}")
        return
    decap = Decap(
        gue_port,
        local_vips=vips,
        sources=sources,
        peers=peers,
        second_chance=second_chance,
        syn_needs_listener=syn_needs_listener,
    )
    try:
        decap.attach(interface, netns_name)
    finally:
        decap.close()
    console.print(f"decap attached to {interface}")


@decap_app.command("detach")
@handle_errors
def decap_detach(interface: str, netns_name: Netns = None) -> None:
    """Remove the decap program from INTERFACE."""
    require_root("detaching tc programs")
    console.print("detached" if Decap.detach(interface, netns_name) else "not attached")
