"""Availability zones (everyone reads them; admins write) and their profiles (admins only),
as Octavia serves them. A zone is named by its name. For the shoal provider a zone's profile
may name the L7 `cluster` its load balancers' proxies go to."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from shoal.controller.api.admin_resources import catalogue_entry, mount, profile
from shoal.controller.api.common import DEFAULT_SORT_KEYS
from shoal.controller.db.models import AvailabilityZone, AvailabilityZoneProfile, LoadBalancer
from shoal.controller.schemas.flavor import (
    AvailabilityZoneCreateBody,
    AvailabilityZoneProfileCreateBody,
    AvailabilityZoneProfileUpdateBody,
    AvailabilityZoneUpdateBody,
)
from shoal.controller.services import flavors

router = APIRouter(tags=["availability zones"])


def profile_view(p: AvailabilityZoneProfile) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "provider_name": p.provider_name,
        "availability_zone_data": p.availability_zone_data,
    }


def zone_view(z: AvailabilityZone) -> dict[str, Any]:
    return {
        "name": z.name,
        "description": z.description,
        "enabled": z.enabled,
        "availability_zone_profile_id": z.availability_zone_profile_id,
    }


PROFILES = profile(
    model=AvailabilityZoneProfile,
    view=profile_view,
    key="availability_zone_profile",
    collection="availability_zone_profiles",
    links_key="availability_zone_profile_links",
    path="/availabilityzoneprofiles",
    label="Availability Zone Profile",
    names=("profiles", "profile"),
    create_body=AvailabilityZoneProfileCreateBody,
    update_body=AvailabilityZoneProfileUpdateBody,
    used_by=(AvailabilityZone.availability_zone_profile_id, "id"),
    data_field="availability_zone_data",
    validate=flavors.validate_az_data,
    default_sort=("id",),  # Octavia's table has no created_at: by id
)
ZONES = catalogue_entry(
    model=AvailabilityZone,
    view=zone_view,
    key="availability_zone",
    collection="availability_zones",
    path="/availabilityzones",
    label="Availability Zone",
    names=("zones", "zone"),
    param="name",
    create_body=AvailabilityZoneCreateBody,
    update_body=AvailabilityZoneUpdateBody,
    lookup_by=("name",),
    used_by=(LoadBalancer.availability_zone, "name"),
    default_sort=DEFAULT_SORT_KEYS,
    profile_model=AvailabilityZoneProfile,
    profile_field="availability_zone_profile_id",
)
mount(router, PROFILES)
mount(router, ZONES)
