"""Read-only catalog: flavors (which choose L4 or L7), providers, availability zones."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from shoal.controller import views
from shoal.controller.api.deps import CurrentPrincipal
from shoal.controller.errors import NotFound

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
def list_providers(principal: CurrentPrincipal) -> dict[str, Any]:
    return {
        "providers": [{"name": "shoal", "description": "Shoal: XDP L4 tier and HAProxy L7 tier"}]
    }


@router.get("/availabilityzones")
def list_availability_zones(principal: CurrentPrincipal) -> dict[str, Any]:
    return {"availability_zones": [], "availability_zones_links": []}
