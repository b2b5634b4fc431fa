"""Flavors and flavor profiles; availability zones and their profiles (admin-defined)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shoal.controller.schemas.common import Description, Name, OctaviaModel, Uuid, WsBool

__all__ = [
    "AvailabilityZoneCreateBody",
    "AvailabilityZoneProfileCreateBody",
    "AvailabilityZoneProfileUpdateBody",
    "AvailabilityZoneUpdateBody",
    "FlavorCreateBody",
    "FlavorProfileCreateBody",
    "FlavorProfileUpdateBody",
    "FlavorUpdateBody",
]

ProviderName = Annotated[Name, Field(min_length=1)]
# Octavia takes the metadata as a JSON text of at most 4096 characters.
Metadata = Annotated[str, Field(max_length=4096)]


class FlavorProfileCreate(OctaviaModel):
    name: Annotated[Name, Field(min_length=1)]
    provider_name: ProviderName
    flavor_data: Metadata


class FlavorProfileUpdate(OctaviaModel):
    name: Annotated[Name, Field(min_length=1)] | None = None
    provider_name: ProviderName | None = None
    flavor_data: Metadata | None = None


class FlavorProfileCreateBody(OctaviaModel):
    flavorprofile: FlavorProfileCreate


class FlavorProfileUpdateBody(OctaviaModel):
    flavorprofile: FlavorProfileUpdate


class FlavorCreate(OctaviaModel):
    name: Annotated[Name, Field(min_length=1)]
    description: Description = ""
    enabled: WsBool = True
    flavor_profile_id: Uuid


class FlavorUpdate(OctaviaModel):
    name: Annotated[Name, Field(min_length=1)] | None = None
    description: Description | None = None
    enabled: WsBool | None = None


class FlavorCreateBody(OctaviaModel):
    flavor: FlavorCreate


class FlavorUpdateBody(OctaviaModel):
    flavor: FlavorUpdate


class AvailabilityZoneProfileCreate(OctaviaModel):
    name: Annotated[Name, Field(min_length=1)]
    provider_name: ProviderName
    availability_zone_data: Metadata


class AvailabilityZoneProfileUpdate(OctaviaModel):
    name: Annotated[Name, Field(min_length=1)] | None = None
    provider_name: ProviderName | None = None
    availability_zone_data: Metadata | None = None


class AvailabilityZoneProfileCreateBody(OctaviaModel):
    availability_zone_profile: AvailabilityZoneProfileCreate


class AvailabilityZoneProfileUpdateBody(OctaviaModel):
    availability_zone_profile: AvailabilityZoneProfileUpdate


class AvailabilityZoneCreate(OctaviaModel):
    name: Annotated[Name, Field(min_length=1)]
    description: Description = ""
    enabled: WsBool = True
    availability_zone_profile_id: Uuid


class AvailabilityZoneUpdate(OctaviaModel):
    description: Description | None = None
    enabled: WsBool | None = None


class AvailabilityZoneCreateBody(OctaviaModel):
    availability_zone: AvailabilityZoneCreate


class AvailabilityZoneUpdateBody(OctaviaModel):
    availability_zone: AvailabilityZoneUpdate
