"""Octavia's amphora API (/v2/octavia/amphorae), answered as Octavia answers it for load
balancers of a provider without amphorae (every provider but Octavia's own amphora driver):
admins list none, and every amphora id is unknown (404). Shoal's nodes, which do the work
amphorae do in Octavia, are under /v2/shoal/nodes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from shoal.controller.api.deps import CurrentPrincipal
from shoal.controller.errors import NotFound

__all__ = ["router"]

router = APIRouter(tags=["amphorae (none: see /v2/shoal/nodes)"])


def _unknown(amphora_id: str) -> NotFound:
    return NotFound(f"Amphora {amphora_id} not found.")


@router.get("/amphorae")
def list_amphorae(principal: CurrentPrincipal) -> dict[str, Any]:
    principal.require_admin()  # os_load-balancer_api:amphora:get_all is admin-only
    return {"amphorae": [], "amphorae_links": []}


@router.get("/amphorae/{amphora_id}")
def get_amphora(amphora_id: str, principal: CurrentPrincipal) -> dict[str, Any]:
    principal.require_admin()
    raise _unknown(amphora_id)


@router.get("/amphorae/{amphora_id}/stats")
def amphora_stats(amphora_id: str, principal: CurrentPrincipal) -> dict[str, Any]:
    principal.require_admin()
    raise _unknown(amphora_id)


@router.put("/amphorae/{amphora_id}/failover", status_code=202)
def failover_amphora(amphora_id: str, principal: CurrentPrincipal) -> None:
    principal.require_admin()
    raise _unknown(amphora_id)


@router.put("/amphorae/{amphora_id}/config", status_code=202)
def configure_amphora(amphora_id: str, principal: CurrentPrincipal) -> None:
    principal.require_admin()
    raise _unknown(amphora_id)


@router.delete("/amphorae/{amphora_id}", status_code=204)
def delete_amphora(amphora_id: str, principal: CurrentPrincipal) -> None:
    principal.require_admin()
    raise _unknown(amphora_id)
