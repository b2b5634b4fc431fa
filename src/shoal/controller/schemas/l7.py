"""L7 policies and their rules."""

from __future__ import annotations

from pydantic import Field

from shoal.controller.schemas.common import (
    AdminState,
    CompareType,
    Description,
    L7Action,
    L7RuleType,
    Name,
    OctaviaModel,
    RedirectCode,
    Tags,
    Uuid,
    WsBool,
    WsInt,
)

Url = str


class _PolicyFields(OctaviaModel):
    name: Name | None = None
    description: Description | None = None
    admin_state_up: AdminState | None = None
    action: L7Action | None = None
    redirect_pool_id: Uuid | None = None
    redirect_url: Url | None = Field(default=None, max_length=2048, pattern=r"^https?://\S+$")
    redirect_prefix: Url | None = Field(default=None, max_length=2048, pattern=r"^https?://\S+$")
    redirect_http_code: RedirectCode | None = None
    position: WsInt | None = Field(default=None, ge=1, le=2147483647)
    tags: Tags | None = None


class L7PolicyCreate(_PolicyFields):
    listener_id: Uuid
    action: L7Action
    project_id: Uuid | None = None
    tenant_id: Uuid | None = None
    rules: list[L7RuleCreate] = Field(default_factory=list, max_length=50)  # in one revision


class L7PolicyUpdate(_PolicyFields):
    pass


class L7RuleFields(OctaviaModel):
    type: L7RuleType | None = None
    compare_type: CompareType | None = None
    # A header or cookie name token (RFC 9110), without the characters HAProxy's
    # configuration parser gives a meaning to ('#', quotes, '$'): it is written unquoted.
    key: str | None = Field(default=None, max_length=255, pattern=r"^[A-Za-z0-9!%&*+.^_`|~-]+$")
    value: str | None = Field(default=None, min_length=1, max_length=255, pattern=r"^[\x20-\x7e]+$")
    invert: WsBool | None = None
    admin_state_up: AdminState | None = None
    tags: Tags | None = None


class L7RuleCreate(L7RuleFields):
    type: L7RuleType
    compare_type: CompareType
    value: str = Field(min_length=1, max_length=255, pattern=r"^[\x20-\x7e]+$")
    project_id: Uuid | None = None
    tenant_id: Uuid | None = None


class L7PolicyCreateBody(OctaviaModel):
    l7policy: L7PolicyCreate


class L7PolicyUpdateBody(OctaviaModel):
    l7policy: L7PolicyUpdate


class L7RuleCreateBody(OctaviaModel):
    rule: L7RuleCreate


class L7RuleUpdateBody(OctaviaModel):
    rule: L7RuleFields


L7PolicyCreate.model_rebuild()
