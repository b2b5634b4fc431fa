"""Flavors and availability zones: what a profile's metadata may hold for its provider, and
which provider, kind (l4/l7) and zone a new load balancer gets from its flavor_id,
provider and availability_zone (in Octavia's order and with its answers)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shoal.controller.db.models import AvailabilityZone, Flavor
from shoal.controller.errors import BadRequest
from shoal.controller.services import providers
from shoal.controller.settings import ControllerSettings

__all__ = ["Choice", "choose", "parse_metadata", "validate_az_data", "validate_flavor_data"]

KINDS = ("l4", "l7")
DEFAULT_FLAVOR_ID = "5b0a1e4d-0000-4000-8000-000000000007"  # the built-in l7 (migration 0008)
# The built-in flavors' kinds by id (what a page shows without reading the profile).
BUILT_IN_KINDS = {"5b0a1e4d-0000-4000-8000-000000000004": "l4", DEFAULT_FLAVOR_ID: "l7"}


def parse_metadata(raw: str, option: str) -> dict[str, Any]:
    """The profile's JSON text as a dict; anything else is Octavia's InvalidOption (400)."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise BadRequest(f"{raw} is not a valid option for {option}")
    return data


def _check_keys(provider: providers.Provider, data: dict[str, Any], table: dict[str, str]) -> None:
    """Only keys the provider lists as capabilities (noop, like Octavia's, takes anything)."""
    if not provider.agents:
        return
    unknown = sorted(set(data) - set(table))
    if unknown:
        raise providers.unsupported(
            provider.name,
            f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not supported; "
            f"supported: {', '.join(sorted(table))}",
        )


def validate_flavor_data(provider: providers.Provider, data: dict[str, Any]) -> None:
    _check_keys(provider, data, provider.flavor_capabilities)
    if provider.agents and data.get("kind", "l7") not in KINDS:
        raise providers.unsupported(provider.name, f"kind must be one of {', '.join(KINDS)}")


def validate_az_data(provider: providers.Provider, data: dict[str, Any]) -> None:
    _check_keys(provider, data, provider.availability_zone_capabilities)
    if provider.agents and not isinstance(data.get("cluster", ""), str):
        raise providers.unsupported(provider.name, "cluster must be a string")


@dataclass(frozen=True)
class Choice:
    provider: providers.Provider
    kind: str
    flavor_id: str | None
    availability_zone: str | None


def _flavor(session: Session, ref: str) -> Flavor:
    flavor = session.scalar(select(Flavor).where(or_(Flavor.id == ref, Flavor.name == ref)))
    if flavor is None:
        raise BadRequest(
            f"Validation failure: Invalid flavor_id. (flavor {ref} does not exist: "
            "GET /v2/lbaas/flavors)"
        )
    if not flavor.enabled:
        raise BadRequest(f"The selected flavor is not allowed in this deployment: {ref}")
    return flavor


def choose(
    session: Session,
    settings: ControllerSettings,
    flavor_ref: str | None,
    provider_name: str | None,
    az_name: str | None,
) -> Choice:
    """Octavia's order: the flavor names its provider; a provider given as well must be the
    same; without either, the default provider (and Shoal's l7 flavor)."""
    flavor = _flavor(session, flavor_ref) if flavor_ref is not None else None
    if flavor is not None:
        owner = flavor.profile.provider_name
        # noop stands in for shoal in API tests: it takes the built-in flavors, for their kind.
        stand_in = provider_name == "noop" and flavor.id in BUILT_IN_KINDS
        if provider_name is not None and provider_name != owner and not stand_in:
            raise BadRequest(
                f"Flavor '{flavor_ref}' is not compatible with provider '{provider_name}'"
            )
        provider_name = provider_name if stand_in else owner
    provider = providers.get(provider_name or settings.default_provider, settings.enabled_providers)
    if flavor is None and provider.name == "shoal":
        flavor = session.scalar(select(Flavor).where(Flavor.id == DEFAULT_FLAVOR_ID))
    kind = "l7"
    if flavor is not None:
        data = parse_metadata(flavor.profile.flavor_data, "flavor_data")
        validate_flavor_data(provider, data)  # the provider must still accept it
        kind = data["kind"] if data.get("kind") in KINDS else "l7"
    if az_name is not None:
        zone = session.scalar(select(AvailabilityZone).where(AvailabilityZone.name == az_name))
        if zone is None:
            raise BadRequest("Validation failure: Invalid availability zone.")
        if not zone.enabled:
            raise BadRequest(
                f"The selected availability_zone is not allowed in this deployment: {az_name}"
            )
        validate_az_data(
            provider, parse_metadata(zone.profile.availability_zone_data, "availability_zone_data")
        )
    return Choice(provider, kind, flavor.id if flavor is not None else None, az_name)
