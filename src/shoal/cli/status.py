"""`shoal status LB`: a load balancer's status tree, coloured."""

from __future__ import annotations

import ipaddress
from typing import Any

import typer
from rich.text import Text
from rich.tree import Tree

from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.common import Format, console
from shoal.cli.options import LbArg
from shoal.cli.output import print_json, status_style
from shoal.cli.resources import LB, find

app = typer.Typer()


def _label(kind: str, obj: dict[str, Any]) -> Text:
    name = obj.get("name") or ""
    if "address" in obj:  # members read best as where they are
        name = f"{obj['address']}:{obj['protocol_port']} {name}".rstrip()
    text = Text.assemble((kind, "bold"), " ", name or obj["id"][:8], "  ")
    for i, key in enumerate(("provisioning_status", "operating_status")):
        value = str(obj.get(key, "?"))
        text.append(" / " if i else "")
        text.append(value, style=status_style(value))
    return text.append(f"  {obj['id']}", style="dim")


def _where(member: dict[str, Any]) -> tuple[int, int, int]:
    address = ipaddress.ip_address(member["address"])
    return address.version, int(address), member["protocol_port"]


def status_tree(lb: dict[str, Any]) -> Tree:
    root = Tree(_label("load balancer", lb))
    if lb.get("provisioning_reason"):
        root.add(Text(f"reason: {lb['provisioning_reason']}", style="red"))
    for listener in lb["listeners"]:
        branch = root.add(_label("listener", listener))
        for pool in listener["pools"]:
            leaf = branch.add(_label("pool", pool))
            monitor = pool.get("health_monitor")
            if monitor:
                leaf.add(_label(f"health monitor {monitor['type']}", monitor))
            for member in sorted(pool["members"], key=_where):
                leaf.add(_label("member", member))
    return root


@api_command(app, "status", output="format")
def status(cmd: Cmd, lb: LbArg) -> None:
    """A load balancer's status tree: listeners, pools, health monitors, members."""
    lb_id = find(cmd.api, LB, lb)["id"]
    tree = cmd.api.get(f"{LB.url(lb_id)}/status")
    if cmd.fmt == Format.json:
        print_json(tree)
    else:
        console.print(status_tree(tree["statuses"]["loadbalancer"]))
