"""Listeners."""

from __future__ import annotations

from pydantic import Field

from shoal.controller.schemas.common import (
    AdminState,
    CidrStr,
    Description,
    ListenerProtocol,
    Name,
    OctaviaModel,
    Port,
    Tags,
    TimeoutMs,
    Uuid,
    WsBool,
    WsInt,
)


class _ListenerFields(OctaviaModel):
    name: Name | None = None
    description: Description | None = None
    admin_state_up: AdminState | None = None
    connection_limit: WsInt | None = Field(default=None, ge=-1, le=2**31 - 1)
    default_pool_id: Uuid | None = None
    default_tls_container_ref: str | None = Field(default=None, max_length=255)
    sni_container_refs: list[str] | None = None
    insert_headers: dict[str, str] | None = None
    timeout_client_data: TimeoutMs | None = None
    timeout_member_connect: TimeoutMs | None = None
    timeout_member_data: TimeoutMs | None = None
    timeout_tcp_inspect: TimeoutMs | None = None
    allowed_cidrs: list[CidrStr] | None = None
    tags: Tags | None = None
    # HSTS (TERMINATED_HTTPS only; Octavia 2.27). A null max age turns it off.
    hsts_max_age: WsInt | None = Field(default=None, ge=0, le=2**31 - 1)
    hsts_include_subdomains: WsBool | None = None
    hsts_preload: WsBool | None = None


class ListenerCreate(_ListenerFields):
    protocol: ListenerProtocol
    protocol_port: Port
    loadbalancer_id: Uuid
    project_id: Uuid | None = None
    tenant_id: Uuid | None = None


class ListenerUpdate(_ListenerFields):
    pass


class ListenerCreateBody(OctaviaModel):
    listener: ListenerCreate


class ListenerUpdateBody(OctaviaModel):
    listener: ListenerUpdate
