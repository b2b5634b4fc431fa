"""Shoal's own API beyond Octavia's (revisions, events, the flow trace), as plain calls on an
ApiClient: `shoal ...` (Typer) and `openstack shoal ...` (the OpenStack client plugin) both
print what these return."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from shoal.cli.client import ApiClient, ApiRequestError
from shoal.cli.resources import LB, find

__all__ = [
    "EVENT_COLUMNS",
    "REVISION_COLUMNS",
    "events",
    "flow_trace",
    "revision",
    "revision_diff",
    "revisions",
    "revisions_url",
    "rollback",
]

REVISION_COLUMNS = ("number", "parent", "author", "created_at", "message", "deleted")
EVENT_COLUMNS = ("id", "at", "severity", "kind", "message")


def revisions_url(api: ApiClient, lb: str) -> tuple[dict[str, Any], str]:
    """The load balancer (by name or id) and its revisions' URL. A deleted load balancer's
    id still has its revisions."""
    try:
        obj = find(api, LB, lb)
    except ApiRequestError as exc:
        if exc.status != 404:
            raise
        obj = {"id": lb}
    return obj, f"/v2/shoal/loadbalancers/{quote(obj['id'], safe='')}/revisions"


def revisions(api: ApiClient, lb: str) -> list[dict[str, Any]]:
    """Newest first."""
    _, url = revisions_url(api, lb)
    rows: list[dict[str, Any]] = api.get(url)["revisions"]
    return rows


def revision(api: ApiClient, lb: str, number: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the load balancer, its revision number)."""
    obj, url = revisions_url(api, lb)
    rev: dict[str, Any] = api.get(f"{url}/{number}")["revision"]
    return obj, rev


def revision_diff(api: ApiClient, lb: str, number: int, against: int | None) -> dict[str, Any]:
    """{"from", "to", "changes", "text"}: what revision number changed against its parent
    (or against `against`)."""
    _, url = revisions_url(api, lb)
    result: dict[str, Any] = api.get(f"{url}/{number}/diff", against=against)
    return result


def rollback(
    api: ApiClient, lb: str, number: int, message: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the load balancer, the new revision that restores revision number)."""
    obj, url = revisions_url(api, lb)
    rev: dict[str, Any] = api.post(f"{url}/{number}/rollback", {"message": message or ""})[
        "revision"
    ]
    return obj, rev


def events(api: ApiClient, lb: str | None, limit: int) -> list[dict[str, Any]]:
    """Newest first, of one load balancer or of every visible one."""
    lb_id = find(api, LB, lb)["id"] if lb else None
    rows: list[dict[str, Any]] = api.get("/v2/shoal/events", load_balancer_id=lb_id, limit=limit)[
        "events"
    ]
    return rows


def flow_trace(
    api: ApiClient,
    lb: str,
    source_ip: str,
    source_port: int,
    protocol_port: int,
    protocol: str = "TCP",
) -> dict[str, Any]:
    """Where a new flow to the load balancer goes, as every L4 node computes it."""
    obj = find(api, LB, lb)
    result: dict[str, Any] = api.post(
        f"/v2/shoal/loadbalancers/{quote(obj['id'], safe='')}/flow-trace",
        {
            "source_ip": source_ip,
            "source_port": source_port,
            "protocol_port": protocol_port,
            "protocol": protocol.upper(),
        },
    )["flow_trace"]
    return result
