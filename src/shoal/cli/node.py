"""`shoal node`: the data-plane nodes the agents registered, and their enrolment (the
credential each node's agent authenticates with)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from shoal.cli.apicmd import Cmd, api_command
from shoal.cli.common import console, err_console
from shoal.cli.options import Flavor
from shoal.cli.resources import NODE, find, list_command

app = typer.Typer(help="Nodes: the machines that serve the VIPs (admins).", no_args_is_help=True)
list_command(app, NODE)
ROUTING_COLUMNS = ("bird", "announced_vips", "bgp_peers")


def routing_fields(routing: dict[str, Any] | None) -> dict[str, Any]:
    """The node's reported BGP/BFD state as three flat fields (one line per peer in
    bgp_peers, "; "-separated)."""
    if not routing:
        return {"bird": "not reported", "announced_vips": "", "bgp_peers": ""}
    peers = []
    for p in routing.get("peers") or []:
        line = f"{p['name']} {p.get('neighbor') or ''}: BGP {p['bgp_state']}"
        line += f" since {p['bgp_since']}" if p.get("bgp_since") else ""
        if p.get("bfd_state"):
            line += f", BFD {p['bfd_state']}"
            line += f" since {p['bfd_since']}" if p.get("bfd_since") else ""
        peers.append(line)
    bird = routing.get("bird", "unknown")
    if routing.get("error"):
        bird += f" ({routing['error']})"
    return {
        "bird": bird,
        "announced_vips": routing.get("announced", 0),
        "bgp_peers": "; ".join(peers) or "none",
    }


@api_command(app, "show", output="columns", arguments={"ref": NODE.argument()})
def show(cmd: Cmd, ref: str) -> None:
    """Show a node, with its BGP and BFD sessions as it last reported them (L4 nodes)."""
    node = find(cmd.api, NODE, ref)
    columns: tuple[str, ...] = (*NODE.columns, "applied_seq", "version")
    if node.get("role") == "l4":
        node |= routing_fields(node.get("routing"))
        columns += ROUTING_COLUMNS
    cmd.show(node, columns)


def _set_admin_state(cmd: Cmd, node: str, state: str) -> None:
    obj = find(cmd.api, NODE, node)
    cmd.show(cmd.api.put(NODE.url(obj["id"]), {"admin_state": state})["node"], NODE.columns)


@api_command(app, "drain", output="columns", arguments={"node": NODE.argument()})
def drain(cmd: Cmd, node: str) -> None:
    """Take a node out of service: it withdraws its VIPs and keeps the flows it has."""
    _set_admin_state(cmd, node, "DRAINING")


@api_command(app, "undrain", output="columns", arguments={"node": NODE.argument()})
def undrain(cmd: Cmd, node: str) -> None:
    """Return a drained node to service."""
    _set_admin_state(cmd, node, "ACTIVE")


ENROLL_COLUMNS = ("name", "role", "cluster", "address", "data_address", "status")


def _deliver(cmd: Cmd, enrolment: dict[str, Any], out: Path | None) -> None:
    """The credential goes to a 0600 file when asked (for the agent's --credential-file),
    else it is shown once."""
    secret = enrolment.pop("credential")
    if out is not None:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
        os.chmod(out, 0o600)
        cmd.show(enrolment, ENROLL_COLUMNS)
        err_console.print(f"the credential is in {out} (mode 0600)", highlight=False)
        return
    cmd.show({**enrolment, "credential": secret}, (*ENROLL_COLUMNS, "credential"))
    err_console.print("the credential is shown only now: keep it", style="yellow")


CredentialOut = Annotated[
    Path | None,
    typer.Option("--credential-file", help="write the credential to this file (mode 0600)"),
]


@api_command(app, "enroll", output="columns")
def enroll(
    cmd: Cmd,
    name: Annotated[str, typer.Argument(help="the node's name (its agent's --name)")],
    role: Annotated[Flavor, typer.Option(help="l4 or l7")],
    cluster: Annotated[str, typer.Option(help="its cluster")] = "default",
    address: Annotated[str | None, typer.Option(help="its address (else any)")] = None,
    data_address: Annotated[
        str | None, typer.Option(help="L7: where the L4 tier sends it traffic (required)")
    ] = None,
    credential_file: CredentialOut = None,
) -> None:
    """Enrol a node: a credential its agent alone uses, bound to this name, role, cluster
    and these addresses."""
    body: dict[str, Any] = {"name": name, "role": role.value, "cluster": cluster}
    body |= {k: v for k, v in (("address", address), ("data_address", data_address)) if v}
    got = cmd.api.post("/v2/shoal/enrollments", {"enrollment": body})["enrollment"]
    _deliver(cmd, got, credential_file)


@api_command(app, "rotate-credential", output="columns")
def rotate_credential(
    cmd: Cmd,
    name: Annotated[str, typer.Argument(help="the node's name")],
    grace: Annotated[
        int, typer.Option(min=0, max=7 * 86400, help="seconds the old credential still works")
    ] = 0,
    credential_file: CredentialOut = None,
) -> None:
    """A new credential for the node; the old one stops working now (or after --grace)."""
    got = cmd.api.post(f"/v2/shoal/enrollments/{name}/rotate", {"grace_seconds": grace})
    _deliver(cmd, got["enrollment"], credential_file)


@api_command(app, "revoke")
def revoke(cmd: Cmd, name: Annotated[str, typer.Argument(help="the node's name")]) -> None:
    """Revoke the node's credential at once: its agent is refused (401) from now on."""
    cmd.api.delete(f"/v2/shoal/enrollments/{name}")
    console.print(f"revoked the credential of node {name}", highlight=False)


@api_command(app, "enrollments", output="format")
def enrollments(cmd: Cmd) -> None:
    """The enrolled nodes and their credentials' state (never the secrets)."""
    rows = cmd.api.get("/v2/shoal/enrollments")["enrollments"]
    cmd.show_list(rows, (*ENROLL_COLUMNS, "rotated_at"), "enrollments")
