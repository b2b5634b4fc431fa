"""Members, single and batch."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ModelWrapValidatorHandler, PrivateAttr, model_validator

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
    """address is stored canonical (the data plane, uniqueness and the address rules use it);
    the text the client sent is kept for display, as Octavia shows it back unchanged."""

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
    _given: str | None = PrivateAttr(default=None)
    _monitor_given: str | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_text(
        cls, data: Any, handler: ModelWrapValidatorHandler[MemberCreate]
    ) -> MemberCreate:
        model = handler(data)
        raw = data.get("address") if isinstance(data, dict) else None
        if isinstance(raw, str) and raw.strip() != model.address:
            model._given = raw.strip()
        raw = data.get("monitor_address") if isinstance(data, dict) else None
        if isinstance(raw, str) and raw.strip() != model.monitor_address:
            model._monitor_given = raw.strip()
        return model

    @property
    def address_given(self) -> str | None:
        return self._given

    @property
    def monitor_address_given(self) -> str | None:
        return self._monitor_given


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
