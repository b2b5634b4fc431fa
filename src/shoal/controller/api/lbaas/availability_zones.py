"""Availability zones (everyone reads them; admins write) and their profiles (admins only),
as Octavia serves them. A zone is named by its name. For the shoal provider a zone's profile
may name the L7 `cluster` its load balancers' proxies go to."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shoal.controller.api.common import list_collection, select_fields
from shoal.controller.api.deps import CurrentPrincipal, State
from shoal.controller.api.lbaas.flavors import in_use, require_reader
from shoal.controller.db.models import AvailabilityZone, AvailabilityZoneProfile, LoadBalancer
from shoal.controller.errors import BadRequest, Conflict, NotFound
from shoal.controller.schemas.flavor import (
    AvailabilityZoneCreateBody,
    AvailabilityZoneProfileCreateBody,
    AvailabilityZoneProfileUpdateBody,
    AvailabilityZoneUpdateBody,
)
from shoal.controller.services import flavors, providers

router = APIRouter(tags=["availability zones"])
PROFILE = "availability_zone_profile"


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


def _validate(state: Any, provider_name: str, raw: str) -> None:
    provider = providers.get(provider_name, state.settings.enabled_providers)
    flavors.validate_az_data(provider, flavors.parse_metadata(raw, "availability_zone_data"))


def _profile(session: Session, ident: str) -> AvailabilityZoneProfile:
    row = session.get(AvailabilityZoneProfile, ident)
    if row is None:
        raise NotFound(f"Availability Zone Profile {ident} not found.")
    return row


def _zone(session: Session, name: str) -> AvailabilityZone:
    row = session.scalar(select(AvailabilityZone).where(AvailabilityZone.name == name))
    if row is None:
        raise NotFound(f"Availability Zone {name} not found.")
    return row


def _profile_in_use(session: Session, ident: str) -> bool:
    used = select(func.count()).where(AvailabilityZone.availability_zone_profile_id == ident)
    return bool(session.scalar(used))


@router.get("/availabilityzoneprofiles")
def list_profiles(request: Request, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    principal.require_admin()
    with state.db.read() as session:
        return list_collection(
            session,
            AvailabilityZoneProfile,
            principal,
            request,
            select(AvailabilityZoneProfile),
            profile_view,
            "availability_zone_profiles",
            computed=(),
            scoped=False,
            default_sort=("id",),  # Octavia's table has no created_at: by id
            links_key="availability_zone_profile_links",
        )


@router.post("/availabilityzoneprofiles", status_code=201)
def create_profile(
    body: AvailabilityZoneProfileCreateBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    spec = body.availability_zone_profile
    _validate(state, spec.provider_name, spec.availability_zone_data)
    with state.db.write() as session:
        row = AvailabilityZoneProfile(**spec.model_dump())
        session.add(row)
        session.flush()
        return {PROFILE: profile_view(row)}


@router.get("/availabilityzoneprofiles/{ident}")
def get_profile(
    ident: str, request: Request, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    with state.db.read() as session:
        return {PROFILE: select_fields(request, [profile_view(_profile(session, ident))])[0]}


@router.put("/availabilityzoneprofiles/{ident}")
def update_profile(
    ident: str, body: AvailabilityZoneProfileUpdateBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    changes = body.availability_zone_profile.model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        key = next(k for k, v in changes.items() if v is None)
        raise BadRequest(f"None is not a valid option for {key}")
    with state.db.write() as session:
        row = _profile(session, ident)
        if {"provider_name", "availability_zone_data"} & set(changes):
            if _profile_in_use(session, ident):
                raise in_use("Availability Zone Profile", ident)
            _validate(
                state,
                changes.get("provider_name", row.provider_name),
                changes.get("availability_zone_data", row.availability_zone_data),
            )
        for key, value in changes.items():
            setattr(row, key, value)
        return {PROFILE: profile_view(row)}


@router.delete("/availabilityzoneprofiles/{ident}", status_code=204)
def delete_profile(ident: str, state: State, principal: CurrentPrincipal) -> Response:
    principal.require_admin()
    with state.db.write() as session:
        row = _profile(session, ident)
        if _profile_in_use(session, ident):
            raise in_use("Availability Zone Profile", ident)
        session.delete(row)
    return Response(status_code=204)


@router.get("/availabilityzones")
def list_zones(request: Request, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    require_reader(principal)
    with state.db.read() as session:
        return list_collection(
            session,
            AvailabilityZone,
            principal,
            request,
            select(AvailabilityZone),
            zone_view,
            "availability_zones",
            computed=(),
            scoped=False,
        )


@router.post("/availabilityzones", status_code=201)
def create_zone(
    body: AvailabilityZoneCreateBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    spec = body.availability_zone
    with state.db.write() as session:
        if session.get(AvailabilityZoneProfile, spec.availability_zone_profile_id) is None:
            raise BadRequest(
                f"{spec.availability_zone_profile_id} is not a valid option for "
                "availability_zone_profile_id"
            )
        if session.scalar(select(AvailabilityZone.id).where(AvailabilityZone.name == spec.name)):
            raise Conflict(f"A availability zone of {spec.name} already exists.")
        row = AvailabilityZone(**spec.model_dump())
        session.add(row)
        session.flush()
        return {"availability_zone": zone_view(row)}


@router.get("/availabilityzones/{name}")
def get_zone(
    name: str, request: Request, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    require_reader(principal)
    with state.db.read() as session:
        return {"availability_zone": select_fields(request, [zone_view(_zone(session, name))])[0]}


@router.put("/availabilityzones/{name}")
def update_zone(
    name: str, body: AvailabilityZoneUpdateBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    changes = body.availability_zone.model_dump(exclude_unset=True, exclude_none=True)
    with state.db.write() as session:
        row = _zone(session, name)
        for key, value in changes.items():
            setattr(row, key, value)
        return {"availability_zone": zone_view(row)}


@router.delete("/availabilityzones/{name}", status_code=204)
def delete_zone(name: str, state: State, principal: CurrentPrincipal) -> Response:
    principal.require_admin()
    with state.db.write() as session:
        row = _zone(session, name)
        if session.scalar(select(func.count()).where(LoadBalancer.availability_zone == name)):
            raise in_use("Availability Zone", name)
        session.delete(row)
    return Response(status_code=204)
