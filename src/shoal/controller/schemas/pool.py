"""Pools."""

from __future__ import annotations

from pydantic import Field, model_validator

from shoal.controller.schemas.common import (
    AdminState,
    Algorithm,
    Description,
    Name,
    OctaviaModel,
    PersistenceType,
    PoolProtocol,
    Tags,
    Uuid,
    WsBool,
    WsInt,
)


class SessionPersistence(OctaviaModel):
    type: PersistenceType
    # A cookie-name token (RFC 6265), without what HAProxy's parser gives a meaning to.
    cookie_name: str | None = Field(
        default=None, max_length=255, pattern=r"^[A-Za-z0-9!%&*+.^_`|~-]+$"
    )
    persistence_timeout: WsInt | None = Field(default=None, ge=0, le=2**31 - 1)
    persistence_granularity: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _cookie(self) -> SessionPersistence:
        if self.type == "APP_COOKIE" and not self.cookie_name:
            raise ValueError("APP_COOKIE persistence needs a cookie_name")
        if self.type != "APP_COOKIE" and self.cookie_name:
            raise ValueError(f"cookie_name is only for APP_COOKIE, not {self.type}")
        return self


class PoolCreate(OctaviaModel):
    name: Name = ""
    description: Description = ""
    admin_state_up: AdminState = True
    protocol: PoolProtocol
    lb_algorithm: Algorithm
    session_persistence: SessionPersistence | None = None
    listener_id: Uuid | None = None
    loadbalancer_id: Uuid | None = None
    tls_enabled: WsBool = False
    project_id: Uuid | None = None
    tenant_id: Uuid | None = None
    tags: Tags = Field(default_factory=list)

    @model_validator(mode="after")
    def _parent(self) -> PoolCreate:
        if not self.listener_id and not self.loadbalancer_id:
            raise ValueError("a pool needs a listener_id or a loadbalancer_id")
        return self


class PoolUpdate(OctaviaModel):
    name: Name | None = None
    description: Description | None = None
    admin_state_up: AdminState | None = None
    lb_algorithm: Algorithm | None = None
    session_persistence: SessionPersistence | None = None
    tls_enabled: WsBool | None = None
    tags: Tags | None = None


class PoolCreateBody(OctaviaModel):
    pool: PoolCreate


class PoolUpdateBody(OctaviaModel):
    pool: PoolUpdate
