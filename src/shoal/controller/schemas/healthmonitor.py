"""Health monitors."""

from __future__ import annotations

from pydantic import Field, StrictInt, model_validator

from shoal.controller.schemas.common import (
    AdminState,
    HttpMethod,
    MonitorType,
    Name,
    OctaviaModel,
    Tags,
    Uuid,
)

EXPECTED_CODES = r"^[1-5][0-9]{2}(-[1-5][0-9]{2}|(,[1-5][0-9]{2})*)$"
URL_PATH = r"^/[\x21-\x7e]*$"


class _MonitorFields(OctaviaModel):
    name: Name | None = None
    admin_state_up: AdminState | None = None
    delay: StrictInt | None = Field(default=None, ge=1, le=86400)
    timeout: StrictInt | None = Field(default=None, ge=1, le=86400)
    max_retries: StrictInt | None = Field(default=None, ge=1, le=10)
    max_retries_down: StrictInt | None = Field(default=None, ge=1, le=10)
    http_method: HttpMethod | None = None
    url_path: str | None = Field(default=None, max_length=2048, pattern=URL_PATH)
    expected_codes: str | None = Field(default=None, max_length=64, pattern=EXPECTED_CODES)
    http_version: float | None = None
    domain_name: str | None = Field(default=None, max_length=255, pattern=r"^[A-Za-z0-9.-]+$")
    tags: Tags | None = None

    @model_validator(mode="after")
    def _timing(self) -> _MonitorFields:
        if self.delay is not None and self.timeout is not None and self.timeout > self.delay:
            raise ValueError(f"timeout {self.timeout} must not exceed delay {self.delay}")
        if self.http_version is not None and self.http_version not in (1.0, 1.1):
            raise ValueError("http_version must be 1.0 or 1.1")
        return self


class HealthMonitorCreate(_MonitorFields):
    pool_id: Uuid
    type: MonitorType
    delay: StrictInt = Field(ge=1, le=86400)
    timeout: StrictInt = Field(ge=1, le=86400)
    max_retries: StrictInt = Field(ge=1, le=10)
    project_id: Uuid | None = None
    tenant_id: Uuid | None = None


class HealthMonitorUpdate(_MonitorFields):
    pass


class HealthMonitorCreateBody(OctaviaModel):
    healthmonitor: HealthMonitorCreate


class HealthMonitorUpdateBody(OctaviaModel):
    healthmonitor: HealthMonitorUpdate
