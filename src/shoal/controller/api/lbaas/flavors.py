"""Flavors (everyone reads them; admins write) and flavor profiles (admins only), as Octavia
serves them. A profile names its provider and holds metadata that provider validates; a
profile a flavor uses cannot change provider or metadata, nor be deleted; a flavor a load
balancer uses cannot be deleted (409)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shoal.controller.api.common import list_collection, select_fields
from shoal.controller.api.deps import CurrentPrincipal, State
from shoal.controller.auth import Principal
from shoal.controller.db.models import Flavor, FlavorProfile, LoadBalancer
from shoal.controller.errors import BadRequest, Conflict, Forbidden, NotFound
from shoal.controller.rbac import NO_ROLE_MESSAGE
from shoal.controller.schemas.flavor import (
    FlavorCreateBody,
    FlavorProfileCreateBody,
    FlavorProfileUpdateBody,
    FlavorUpdateBody,
)
from shoal.controller.services import flavors, providers

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


def require_reader(principal: Principal) -> None:
    """load-balancer:read: any role that may read load balancers."""
    if principal.role not in ("admin", "member", "reader") and not principal.global_read:
        raise Forbidden(NO_ROLE_MESSAGE)


def in_use(exc: str, ident: str) -> Conflict:
    return Conflict(f"{exc} {ident} is in use and cannot be modified.")


def _validate(state: Any, provider_name: str, raw: str) -> None:
    provider = providers.get(provider_name, state.settings.enabled_providers)
    flavors.validate_flavor_data(provider, flavors.parse_metadata(raw, "flavor_data"))


def _profile(session: Session, ident: str) -> FlavorProfile:
    row = session.get(FlavorProfile, ident)
    if row is None:
        raise NotFound(f"Flavor profile {ident} not found.")
    return row


def _flavor(session: Session, ident: str) -> Flavor:
    row = session.get(Flavor, ident) or session.scalar(select(Flavor).where(Flavor.name == ident))
    if row is None:
        raise NotFound(f"Flavor {ident} not found.")
    return row


@router.get("/flavorprofiles")
def list_profiles(request: Request, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    principal.require_admin()
    with state.db.read() as session:
        return list_collection(
            session,
            FlavorProfile,
            principal,
            request,
            select(FlavorProfile),
            profile_view,
            "flavorprofiles",
            computed=(),
            scoped=False,
            default_sort=("id",),  # Octavia's table has no created_at: by id
            links_key="flavorprofile_links",
        )


@router.post("/flavorprofiles", status_code=201)
def create_profile(
    body: FlavorProfileCreateBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    spec = body.flavorprofile
    _validate(state, spec.provider_name, spec.flavor_data)
    with state.db.write() as session:
        row = FlavorProfile(
            name=spec.name, provider_name=spec.provider_name, flavor_data=spec.flavor_data
        )
        session.add(row)
        session.flush()
        return {"flavorprofile": profile_view(row)}


@router.get("/flavorprofiles/{ident}")
def get_profile(
    ident: str, request: Request, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    with state.db.read() as session:
        return {
            "flavorprofile": select_fields(request, [profile_view(_profile(session, ident))])[0]
        }


@router.put("/flavorprofiles/{ident}")
def update_profile(
    ident: str, body: FlavorProfileUpdateBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    changes = body.flavorprofile.model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        key = next(k for k, v in changes.items() if v is None)
        raise BadRequest(f"None is not a valid option for {key}")
    with state.db.write() as session:
        row = _profile(session, ident)
        if {"provider_name", "flavor_data"} & set(changes):
            if session.scalar(select(func.count()).where(Flavor.flavor_profile_id == ident)):
                raise in_use("Flavor profile", ident)
            _validate(
                state,
                changes.get("provider_name", row.provider_name),
                changes.get("flavor_data", row.flavor_data),
            )
        for key, value in changes.items():
            setattr(row, key, value)
        return {"flavorprofile": profile_view(row)}


@router.delete("/flavorprofiles/{ident}", status_code=204)
def delete_profile(ident: str, state: State, principal: CurrentPrincipal) -> Response:
    principal.require_admin()
    with state.db.write() as session:
        row = _profile(session, ident)
        if session.scalar(select(func.count()).where(Flavor.flavor_profile_id == ident)):
            raise in_use("Flavor profile", ident)
        session.delete(row)
    return Response(status_code=204)


@router.get("/flavors")
def list_flavors(request: Request, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    require_reader(principal)
    with state.db.read() as session:
        return list_collection(
            session,
            Flavor,
            principal,
            request,
            select(Flavor),
            flavor_view,
            "flavors",
            computed=(),
            scoped=False,
            default_sort=("id",),
        )


@router.post("/flavors", status_code=201)
def create_flavor(
    body: FlavorCreateBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    spec = body.flavor
    with state.db.write() as session:
        if session.get(FlavorProfile, spec.flavor_profile_id) is None:
            raise BadRequest(
                f"{spec.flavor_profile_id} is not a valid option for flavor_profile_id"
            )
        if session.scalar(select(Flavor.id).where(Flavor.name == spec.name)):
            raise Conflict(f"A flavor of {spec.name} already exists.")
        row = Flavor(**spec.model_dump())
        session.add(row)
        session.flush()
        return {"flavor": flavor_view(row)}


@router.get("/flavors/{ident}")
def get_flavor(
    ident: str, request: Request, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    require_reader(principal)
    with state.db.read() as session:
        return {"flavor": select_fields(request, [flavor_view(_flavor(session, ident))])[0]}


@router.put("/flavors/{ident}")
def update_flavor(
    ident: str, body: FlavorUpdateBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    changes = body.flavor.model_dump(exclude_unset=True, exclude_none=True)
    with state.db.write() as session:
        row = _flavor(session, ident)
        name = changes.get("name")
        if (
            name
            and name != row.name
            and session.scalar(select(Flavor.id).where(Flavor.name == name))
        ):
            raise Conflict(f"A flavor of {name} already exists.")
        for key, value in changes.items():
            setattr(row, key, value)
        return {"flavor": flavor_view(row)}


@router.delete("/flavors/{ident}", status_code=204)
def delete_flavor(ident: str, state: State, principal: CurrentPrincipal) -> Response:
    principal.require_admin()
    with state.db.write() as session:
        row = _flavor(session, ident)
        if session.scalar(select(func.count()).where(LoadBalancer.flavor_id == row.id)):
            raise in_use("Flavor", ident)
        session.delete(row)
    return Response(status_code=204)
