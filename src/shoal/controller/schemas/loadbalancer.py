"""Load balancers."""

from __future__ import annotations

from pydantic import Field

from shoal.controller.schemas.common import (
    AdminState,
    Description,
    IpAddressStr,
    Name,
    OctaviaModel,
    Tags,
    Uuid,
)


class LoadBalancerCreate(OctaviaModel):
    name: Name = ""
    description: Description = ""
    admin_state_up: AdminState = True
    vip_address: IpAddressStr | None = None
    vip_subnet_id: Uuid | None = None  # a configured VIP pool (shown to clients as a subnet)
    vip_network_id: Uuid | None = None  # a group of VIP pools (shown to clients as a network)
    vip_port_id: Uuid | None = None
    vip_qos_policy_id: Uuid | None = None
    project_id: Uuid | None = None  # admins may create in another project
    tenant_id: Uuid | None = None
    provider: Name | None = None
    flavor_id: Uuid | None = None  # "l4" or "l7" (id or name); default l7
    availability_zone: Name | None = None
    tags: Tags = Field(default_factory=list)


class LoadBalancerUpdate(OctaviaModel):
    name: Name | None = None
    description: Description | None = None
    admin_state_up: AdminState | None = None
    vip_qos_policy_id: Uuid | None = None
    tags: Tags | None = None


class LoadBalancerCreateBody(OctaviaModel):
    loadbalancer: LoadBalancerCreate


class LoadBalancerUpdateBody(OctaviaModel):
    loadbalancer: LoadBalancerUpdate
