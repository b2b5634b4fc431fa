"""The provider drivers a load balancer can name, as Octavia lists them: `shoal` (the XDP L4
tier and the HAProxy L7 tier, configured through revisions the agents apply) and `noop`
(accepts everything and goes ACTIVE at once, without agents: for API testing, like
Octavia's noop drivers)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.controller.errors import ApiError, BadRequest

__all__ = [
    "PROVIDERS",
    "Provider",
    "ProviderNotImplementedError",
    "get",
    "unsupported",
]


class ProviderNotImplementedError(ApiError):
    """Octavia's answer (501) when a provider cannot do what was asked."""

    status = 501


@dataclass(frozen=True)
class Provider:
    name: str
    description: str
    # What a flavor profile's metadata and an availability zone profile's metadata may hold.
    flavor_capabilities: dict[str, str] = field(default_factory=dict)
    availability_zone_capabilities: dict[str, str] = field(default_factory=dict)
    # Listener protocols this provider does not serve, per load balancer kind.
    unsupported_protocols: dict[str, frozenset[str]] = field(default_factory=dict)
    agents: bool = True  # False: nothing is sent to nodes; writes settle at once


PROVIDERS: dict[str, Provider] = {
    "shoal": Provider(
        "shoal",
        "Shoal XDP L4 tier and HAProxy L7 tier",
        flavor_capabilities={
            "kind": "l4 (XDP, Maglev, direct server return: TCP, UDP) or l7 (HAProxy behind "
            "the L4 tier: HTTP, HTTPS, TERMINATED_HTTPS, TCP)",
        },
        availability_zone_capabilities={
            "cluster": "The L7 node cluster to place this load balancer's proxies in.",
        },
        unsupported_protocols={
            "l4": frozenset({"HTTP", "HTTPS", "TERMINATED_HTTPS", "SCTP", "PROMETHEUS"}),
            "l7": frozenset({"UDP", "SCTP", "PROMETHEUS"}),
        },
    ),
    "noop": Provider(
        "noop",
        "The no-op provider (accepts every request and configures nothing)",
        flavor_capabilities={
            "amp_image_tag": "The glance image tag to use for this load balancer."
        },
        availability_zone_capabilities={
            "compute_zone": "The compute availability zone to use for this loadbalancer.",
            "volume_zone": "The volume availability zone to use for this loadbalancer.",
        },
        agents=False,
    ),
}


def get(name: str, enabled: list[str] | None = None) -> Provider:
    """As Octavia's driver_factory.get_driver: a provider that is not enabled is a 400, even
    an unknown one; only an enabled one that cannot be loaded is a 501."""
    if enabled is not None and name not in enabled:
        raise BadRequest(f"Provider '{name}' is not enabled.")
    provider = PROVIDERS.get(name)
    if provider is None:
        raise ProviderNotImplementedError(f"Provider '{name}' was not found.")
    return provider


def unsupported(provider: str, what: str) -> ProviderNotImplementedError:
    return ProviderNotImplementedError(
        f"Provider '{provider}' does not support a requested option: {what}"
    )
