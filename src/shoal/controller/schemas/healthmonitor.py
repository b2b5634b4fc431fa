"""Health monitors."""

from __future__ import annotations

from pydantic import Field, model_validator

from shoal.controller.schemas.common import (
    AdminState,
    HttpMethod,
    MonitorType,
    Name,
    OctaviaModel,
    Tags,
    Uuid,
    WsInt,
)

EXPECTED_CODES = r"^[1-5][0-9]{2}(-[1-5][0-9]{2}|(,[1-5][0-9]{2})*)$"
URL_PATH = r"^/[\x21-\x7e]*$"
MAX_INT = 2**31 - 1
UDP_CONNECT_MIN_DELAY = 3  # Octavia's udp_connect_min_interval_health_monitor default


class _MonitorFields(OctaviaModel):
    name: Name | None = None
    admin_state_up: AdminState | None = None
    # Octavia's bounds: any non-negative delay and timeout, timeout > delay included (the
    # agents probe at most once a second whatever the delay).
    delay: WsInt | None = Field(default=None, ge=0, le=MAX_INT)
    timeout: WsInt | None = Field(default=None, ge=0, le=MAX_INT)
    max_retries: WsInt | None = Field(default=None, ge=1, le=10)
    max_retries_down: WsInt | None = Field(default=None, ge=1, le=10)
    http_method: HttpMethod | None = None
    url_path: str | None = Field(default=None, max_length=2048, pattern=URL_PATH)
    expected_codes: str | None = Field(default=None, max_length=64, pattern=EXPECTED_CODES)
    http_version: float | None = None
    domain_name: str | None = Field(default=None, max_length=255, pattern=r"^[A-Za-z0-9.-]+$")
    tags: Tags | None = None

    @model_validator(mode="after")
    def _timing(self) -> _MonitorFields:
        if self.http_version is not None and self.http_version not in (1.0, 1.1):
            raise ValueError("http_version must be 1.0 or 1.1")
        return self


class HealthMonitorCreate(_MonitorFields):
    pool_id: Uuid
    type: MonitorType
    delay: WsInt = Field(ge=0, le=MAX_INT)
    timeout: WsInt = Field(ge=0, le=MAX_INT)
    max_retries: WsInt = Field(ge=1, le=10)
    project_id: Uuid | None = None
    tenant_id: Uuid | None = None

    @model_validator(mode="after")
    def _udp_delay(self) -> HealthMonitorCreate:
        if self.type == "UDP-CONNECT" and self.delay < UDP_CONNECT_MIN_DELAY:
            raise ValueError(
                f"The request delay value {self.delay} should be larger than "
                f"{UDP_CONNECT_MIN_DELAY} for {self.type} health monitor type."
            )
        return self


class HealthMonitorUpdate(_MonitorFields):
    pass


class HealthMonitorCreateBody(OctaviaModel):
    healthmonitor: HealthMonitorCreate


class HealthMonitorUpdateBody(OctaviaModel):
    healthmonitor: HealthMonitorUpdate
