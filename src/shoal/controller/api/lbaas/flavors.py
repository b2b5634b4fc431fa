"""Flavors (everyone reads them; admins write) and flavor profiles (admins only), as Octavia
serves them. A profile names its provider and holds metadata that provider validates; a
profile a flavor uses cannot change provider or metadata, nor be deleted; a flavor a load
balancer uses cannot be deleted (409)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from shoal.controller.api.admin_resources import catalogue_entry, mount, profile
from shoal.controller.db.models import Flavor, FlavorProfile, LoadBalancer
from shoal.controller.schemas.flavor import (
    FlavorCreateBody,
    FlavorProfileCreateBody,
    FlavorProfileUpdateBody,
    FlavorUpdateBody,
)
from shoal.controller.services import flavors

router = APIRouter(tags=["flavors"])


def profile_view(p: FlavorProfile) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "provider_name": p.provider_name,
        "flavor_data": p.flavor_data,
    }


def flavor_view(f: Flavor) -> dict[str, Any]:
    return {
        "id": f.id,
        "name": f.name,
        "description": f.description,
        "enabled": f.enabled,
        "flavor_profile_id": f.flavor_profile_id,
    }


PROFILES = profile(
    model=FlavorProfile,
    view=profile_view,
    key="flavorprofile",
    collection="flavorprofiles",
    links_key="flavorprofile_links",
    path="/flavorprofiles",
    label="Flavor profile",
    names=("profiles", "profile"),
    create_body=FlavorProfileCreateBody,
    update_body=FlavorProfileUpdateBody,
    used_by=(Flavor.flavor_profile_id, "id"),
    data_field="flavor_data",
    validate=flavors.validate_flavor_data,
    default_sort=("id",),  # Octavia's table has no created_at: by id
)
FLAVORS = catalogue_entry(
    model=Flavor,
    view=flavor_view,
    key="flavor",
    collection="flavors",
    path="/flavors",
    label="Flavor",
    names=("flavors", "flavor"),
    create_body=FlavorCreateBody,
    update_body=FlavorUpdateBody,
    lookup_by=("id", "name"),
    used_by=(LoadBalancer.flavor_id, "id"),
    profile_model=FlavorProfile,
    profile_field="flavor_profile_id",
)
mount(router, PROFILES)
mount(router, FLAVORS)
