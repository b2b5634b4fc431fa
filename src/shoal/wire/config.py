"""A load balancer's desired configuration, as revisions store it and agents apply it: one
typed model, versioned by SCHEMA_VERSION.

The controller writes it (canonical JSON of these fields, `schema_version` included), the
agents and the flow trace read it, rollback turns it back into rows. A revision written by an
older schema is read through `upgrade_config`, so it still rolls back and still applies.

Fields a newer schema adds get a default here, which is what makes an older document
readable; unknown fields are ignored, so an agent one version behind the controller keeps
working."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SCHEMA_VERSION",
    "HealthMonitorConfig",
    "L7PolicyConfig",
    "L7RuleConfig",
    "ListenerConfig",
    "LoadBalancerConfig",
    "MemberConfig",
    "PoolConfig",
    "upgrade_config",
]

# 1: revisions before the typed contract (no schema_version field).
# 2: schema_version at the top of every configuration.
SCHEMA_VERSION = 2


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MemberConfig(_Part):
    id: str
    name: str = ""
    address: str
    protocol_port: int
    weight: int = 1
    backup: bool = False
    admin_state_up: bool = True
    subnet_id: str | None = None
    monitor_address: str | None = None
    monitor_port: int | None = None
    tags: list[str] = Field(default_factory=list)


class HealthMonitorConfig(_Part):
    id: str
    name: str = ""
    type: str
    delay: int
    timeout: int
    max_retries: int
    max_retries_down: int = 3
    http_method: str | None = None
    url_path: str | None = None
    expected_codes: str | None = None
    http_version: float | None = None
    domain_name: str | None = None
    admin_state_up: bool = True
    tags: list[str] = Field(default_factory=list)


class PoolConfig(_Part):
    id: str
    name: str = ""
    description: str = ""
    protocol: str = "TCP"
    lb_algorithm: str = "ROUND_ROBIN"
    session_persistence: dict[str, Any] | None = None
    tls_enabled: bool = False
    admin_state_up: bool = True
    tags: list[str] = Field(default_factory=list)
    healthmonitor: HealthMonitorConfig | None = None
    members: list[MemberConfig] = Field(default_factory=list)


class L7RuleConfig(_Part):
    id: str
    type: str
    compare_type: str
    key: str | None = None
    value: str
    invert: bool = False
    admin_state_up: bool = True
    tags: list[str] = Field(default_factory=list)


class L7PolicyConfig(_Part):
    id: str
    name: str = ""
    description: str = ""
    action: str
    position: int
    redirect_pool_id: str | None = None
    redirect_url: str | None = None
    redirect_prefix: str | None = None
    redirect_http_code: int | None = None
    admin_state_up: bool = True
    tags: list[str] = Field(default_factory=list)
    rules: list[L7RuleConfig] = Field(default_factory=list)


class ListenerConfig(_Part):
    id: str
    name: str = ""
    description: str = ""
    protocol: str
    protocol_port: int
    connection_limit: int = -1
    default_pool_id: str | None = None
    admin_state_up: bool = True
    timeout_client_data: int | None = 50000
    timeout_member_connect: int | None = 5000
    timeout_member_data: int | None = 50000
    timeout_tcp_inspect: int | None = 0
    allowed_cidrs: list[str] | None = Field(default_factory=list)
    insert_headers: dict[str, Any] | None = Field(default_factory=dict)
    default_tls_container_ref: str | None = None
    sni_container_refs: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    l7policies: list[L7PolicyConfig] = Field(default_factory=list)


class LoadBalancerConfig(_Part):
    schema_version: int = SCHEMA_VERSION
    id: str = ""
    name: str = ""
    description: str = ""
    kind: str = "l7"
    vip_address: str
    vip_subnet_id: str | None = None
    vip_network_id: str | None = None
    vip_port_id: str | None = None
    admin_state_up: bool = True
    tags: list[str] = Field(default_factory=list)
    flavor_id: str | None = None
    provider: str = "shoal"
    availability_zone: str | None = None
    project_id: str = ""
    listeners: list[ListenerConfig] = Field(default_factory=list)
    pools: list[PoolConfig] = Field(default_factory=list)


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    # Version 1 had no marker; its missing fields take the model's defaults when read.
    return {**doc, "schema_version": 2}


# One step per version: _UPGRADES[n] turns a version-n document into a version-n+1 one.
_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}


def upgrade_config(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored configuration of any earlier schema as a current one, every field present
    (what rollback needs to rewrite rows). Raises ValueError for a newer schema than this
    code knows: a controller must not roll back to what it cannot read."""
    version = int(doc.get("schema_version", 1))
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"configuration schema {version} is newer than this controller's ({SCHEMA_VERSION})"
        )
    while version < SCHEMA_VERSION:
        doc = _UPGRADES[version](doc)
        version += 1
    return LoadBalancerConfig.model_validate(doc).model_dump()
