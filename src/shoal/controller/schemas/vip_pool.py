"""VIP pools (Shoal's own resource; OpenStack clients know a pool as a subnet)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StrictBool

from shoal.addresses import network_refusal, parse_network
from shoal.controller.schemas.common import Description, Name, OctaviaModel, Uuid

__all__ = ["VipPoolCreateBody", "VipPoolUpdateBody"]


def _pool_cidr(value: str) -> str:
    net = parse_network(value)
    if refusal := network_refusal(net):
        raise ValueError(f"{net} {refusal}: no VIP may come from there")
    return str(net)


ProjectIds = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]],
    Field(max_length=1000),
]


class VipPoolCreate(OctaviaModel):
    name: Annotated[Name, Field(min_length=1)]
    description: Description = ""
    cidr: Annotated[str, Field(max_length=64), AfterValidator(_pool_cidr)]
    network_id: Uuid | None = None  # pools of one network; default: a network of its own
    shared: StrictBool = False
    project_ids: ProjectIds = Field(default_factory=list)


class VipPoolUpdate(OctaviaModel):
    """The prefix stays: load balancers hold addresses from it."""

    name: Annotated[Name, Field(min_length=1)] | None = None
    description: Description | None = None
    shared: StrictBool | None = None
    project_ids: ProjectIds | None = None


class VipPoolCreateBody(OctaviaModel):
    vip_pool: VipPoolCreate


class VipPoolUpdateBody(OctaviaModel):
    vip_pool: VipPoolUpdate
