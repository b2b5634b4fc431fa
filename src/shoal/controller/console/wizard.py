"""The create wizard: a load balancer with its listener, pool, members and health monitor,
made by the same API calls the CLI makes, one after another (each waits for the load
balancer to leave PENDING_*, as Octavia's clients must)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shoal.controller.console.apiclient import ApiFailureError
from shoal.controller.console.context import Console, ConsoleDep, security_headers

router = APIRouter()
L4_PROTOCOLS = ("TCP", "UDP")
L7_PROTOCOLS = ("HTTP", "HTTPS", "TERMINATED_HTTPS")
ALGORITHMS = ("ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP", "SOURCE_IP_PORT")
MONITORS = ("", "TCP", "HTTP", "HTTPS", "PING", "TLS-HELLO", "UDP-CONNECT")
# What each tier does best when the user leaves the choice: Maglev on the 5-tuple for L4.
DEFAULT_ALGORITHM = {"l4": "SOURCE_IP_PORT", "l7": "ROUND_ROBIN"}
DEFAULTS = {
    "kind": "l4",
    "protocol": "TCP",
    "protocol_port": "80",
    "lb_algorithm": "",
    "hm_type": "",
    "hm_delay": "5",
    "hm_timeout": "3",
    "hm_max_retries": "3",
    "hm_url_path": "/",
}


class WizardError(Exception):
    def __init__(self, step: str, line: str) -> None:
        super().__init__(line)
        self.step = step
        self.line = line


def _int_or_text(value: str) -> Any:
    value = value.strip()
    return int(value) if value.isdigit() else value  # the API names what is wrong with text


def parse_members(text: str) -> list[dict[str, Any]]:
    """One member per line: `address port [weight]` (blank lines and # comments skipped)."""
    members = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) not in (2, 3):
            raise WizardError("members", f"members line {number}: write `address port [weight]`")
        member: dict[str, Any] = {"address": parts[0], "protocol_port": _int_or_text(parts[1])}
        if len(parts) == 3:
            member["weight"] = _int_or_text(parts[2])
        members.append(member)
    return members


async def _options(c: Console) -> dict[str, Any]:
    try:
        providers = (await c.api.get("/v2/lbaas/providers"))["providers"]
        certificates = (await c.api.get("/v2/shoal/certificates"))["certificates"]
    except ApiFailureError:
        providers, certificates = [], []
    return {
        "providers": [p["name"] for p in providers],
        "certificates": certificates,
        "l4_protocols": L4_PROTOCOLS,
        "l7_protocols": L7_PROTOCOLS,
        "algorithms": ALGORITHMS,
        "monitors": MONITORS,
    }


@router.get("/create")
async def wizard_form(c: ConsoleDep) -> HTMLResponse:
    return c.page("wizard.html", form=DEFAULTS, error="", step="", **(await _options(c)))


async def _settled(c: Console, lb_id: str, step: str) -> None:
    """Waits (bounded) until the load balancer may take its next write."""
    deadline = time.monotonic() + c.state.settings.pending_timeout + 5
    while True:
        lb = (await c.api.get(f"/v2/lbaas/loadbalancers/{lb_id}"))["loadbalancer"]
        status = lb["provisioning_status"]
        if status == "ERROR":
            raise WizardError(step, f"the load balancer went to ERROR after the {step} step")
        if not status.startswith("PENDING_"):
            return
        if time.monotonic() > deadline:
            raise WizardError(step, f"the load balancer is still {status}; see its page")
        await asyncio.sleep(0.2)


async def _step(c: Console, step: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        reply = await c.api.call("POST" if step != "members" else "PUT", path, body)
    except ApiFailureError as exc:
        raise WizardError(step, exc.line) from None
    return reply.body or {}


async def build(c: Console, form: dict[str, str]) -> str:
    """Makes the load balancer and its children; returns its id."""
    lb_body: dict[str, Any] = {"name": form.get("name", ""), "flavor_id": form.get("kind", "l4")}
    for key in ("description", "vip_address", "provider"):
        if form.get(key, "").strip():
            lb_body[key] = form[key].strip()
    members = parse_members(form.get("members", ""))
    lb = await _step(c, "load balancer", "/v2/lbaas/loadbalancers", {"loadbalancer": lb_body})
    lb_id = str(lb["loadbalancer"]["id"])
    try:
        await _children(c, lb_id, form, members)
    except WizardError as exc:
        raise WizardError(exc.step, f"{exc.line} (load balancer {lb_id} was created)") from None
    return lb_id


async def _children(
    c: Console, lb_id: str, form: dict[str, str], members: list[dict[str, Any]]
) -> None:
    protocol = form.get("protocol", "TCP")
    listener: dict[str, Any] = {
        "loadbalancer_id": lb_id,
        "protocol": protocol,
        "protocol_port": _int_or_text(form.get("protocol_port", "")),
        "name": form.get("listener_name", ""),
    }
    if form.get("certificate"):
        listener["default_tls_container_ref"] = form["certificate"]
    await _settled(c, lb_id, "load balancer")
    made = await _step(c, "listener", "/v2/lbaas/listeners", {"listener": listener})
    pool = {
        "listener_id": made["listener"]["id"],
        "protocol": "HTTP" if protocol == "TERMINATED_HTTPS" else protocol,
        "lb_algorithm": form.get("lb_algorithm")
        or DEFAULT_ALGORITHM.get(form.get("kind", ""), "ROUND_ROBIN"),
    }
    await _settled(c, lb_id, "listener")
    pool_id = (await _step(c, "pool", "/v2/lbaas/pools", {"pool": pool}))["pool"]["id"]
    if members:
        await _settled(c, lb_id, "pool")
        await _step(c, "members", f"/v2/lbaas/pools/{pool_id}/members", {"members": members})
    if form.get("hm_type"):
        monitor: dict[str, Any] = {"pool_id": pool_id, "type": form["hm_type"]}
        for key in ("delay", "timeout", "max_retries"):
            monitor[key] = _int_or_text(form.get(f"hm_{key}", ""))
        if form["hm_type"] in ("HTTP", "HTTPS"):
            monitor["url_path"] = form.get("hm_url_path", "/")
        await _settled(c, lb_id, "members")
        await _step(c, "health monitor", "/v2/lbaas/healthmonitors", {"healthmonitor": monitor})


@router.post("/create")
async def wizard_submit(c: ConsoleDep) -> Response:
    form = await c.form()
    try:
        lb_id = await build(c, form)
    except WizardError as exc:
        return c.page(
            "wizard.html",
            400,
            form={**DEFAULTS, **form},
            error=exc.line,
            step=exc.step,
            **(await _options(c)),
        )
    return security_headers(RedirectResponse(f"/ui/loadbalancers/{lb_id}", status_code=303))
