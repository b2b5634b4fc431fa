"""Read-only catalog: flavors (which choose L4 or L7), providers, availability zones."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from shoal.controller import views
from shoal.controller.api.common import select_fields
from shoal.controller.api.deps import CurrentPrincipal, State
from shoal.controller.errors import NotFound
from shoal.controller.services import providers

router = APIRouter(tags=["catalog"])


@router.get("/flavors")
def list_flavors(principal: CurrentPrincipal, name: str | None = None) -> dict[str, Any]:
    flavors = [f for f in views.FLAVORS.values() if name in (None, f["name"])]
    return {"flavors": flavors, "flavors_links": []}


@router.get("/flavors/{flavor_id}")
def get_flavor(flavor_id: str, principal: CurrentPrincipal) -> dict[str, Any]:
    for f in views.FLAVORS.values():
        if flavor_id in (f["id"], f["name"]):
            return {"flavor": f}
    raise NotFound.of("Flavor", flavor_id)


@router.get("/providers")
def list_providers(request: Request, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    items = [
        {"name": p.name, "description": p.description}
        for name, p in providers.PROVIDERS.items()
        if name in state.settings.enabled_providers
    ]
    return {"providers": select_fields(request, items)}


def _capabilities(request: Request, table: dict[str, str]) -> list[dict[str, Any]]:
    """A provider's capability table as Octavia lists it: name= and description= filter."""
    name, description = request.query_params.get("name"), request.query_params.get("description")
    items = [
        {"name": k, "description": v}
        for k, v in table.items()
        if name in (None, k) and description in (None, v)
    ]
    return select_fields(request, items)


@router.get("/providers/{provider}/flavor_capabilities")
def flavor_capabilities(
    provider: str, request: Request, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    table = providers.get(provider, state.settings.enabled_providers).flavor_capabilities
    return {"flavor_capabilities": _capabilities(request, table)}


@router.get("/providers/{provider}/availability_zone_capabilities")
def availability_zone_capabilities(
    provider: str, request: Request, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    table = providers.get(provider, state.settings.enabled_providers).availability_zone_capabilities
    return {"availability_zone_capabilities": _capabilities(request, table)}


@router.get("/availabilityzones")
def list_availability_zones(principal: CurrentPrincipal) -> dict[str, Any]:
    return {"availability_zones": [], "availability_zones_links": []}
