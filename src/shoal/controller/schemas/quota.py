"""Quotas."""

from __future__ import annotations

from pydantic import Field

from shoal.controller.schemas.common import OctaviaModel, WsInt

Limit = WsInt | None


class QuotaUpdate(OctaviaModel):
    load_balancer: Limit = Field(default=None, ge=-1, le=2**31 - 1)
    loadbalancer: Limit = Field(default=None, ge=-1, le=2**31 - 1)  # Octavia accepts both spellings
    listener: Limit = Field(default=None, ge=-1, le=2**31 - 1)
    pool: Limit = Field(default=None, ge=-1, le=2**31 - 1)
    member: Limit = Field(default=None, ge=-1, le=2**31 - 1)
    health_monitor: Limit = Field(default=None, ge=-1, le=2**31 - 1)
    healthmonitor: Limit = Field(default=None, ge=-1, le=2**31 - 1)
    l7policy: Limit = Field(default=None, ge=-1, le=2**31 - 1)
    l7rule: Limit = Field(default=None, ge=-1, le=2**31 - 1)


class QuotaUpdateBody(OctaviaModel):
    quota: QuotaUpdate
