"""Members, single and batch."""

from __future__ import annotations

from pydantic import Field

from shoal.controller.schemas.common import (
    AdminState,
    IpAddressStr,
    Name,
    OctaviaModel,
    Port,
    Tags,
    Uuid,
    WsBool,
    WsInt,
)

Weight = WsInt


class MemberCreate(OctaviaModel):
    name: Name = ""
    admin_state_up: AdminState = True
    address: IpAddressStr
    protocol_port: Port
    weight: Weight = Field(default=1, ge=0, le=256)
    backup: WsBool = False
    subnet_id: Uuid | None = None
    monitor_address: IpAddressStr | None = None
    monitor_port: Port | None = None
    project_id: Uuid | None = None
    tenant_id: Uuid | None = None
    tags: Tags = Field(default_factory=list)


class MemberUpdate(OctaviaModel):
    name: Name | None = None
    admin_state_up: AdminState | None = None
    weight: Weight | None = Field(default=None, ge=0, le=256)
    backup: WsBool | None = None
    monitor_address: IpAddressStr | None = None
    monitor_port: Port | None = None
    tags: Tags | None = None


class MemberCreateBody(OctaviaModel):
    member: MemberCreate


class MemberUpdateBody(OctaviaModel):
    member: MemberUpdate


class MembersBatchBody(OctaviaModel):
    """PUT /pools/{id}/members: the pool's whole member set; absent members are removed."""

    members: list[MemberCreate] = Field(max_length=10000)
