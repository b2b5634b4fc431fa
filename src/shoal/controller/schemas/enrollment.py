"""Node enrolment: what an admin says a node is, before its agent may register it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictInt

from shoal.controller.schemas.common import IpAddressStr, OctaviaModel

__all__ = ["EnrollmentCreate", "EnrollmentCreateBody", "EnrollmentRotate"]

NodeName = Annotated[
    str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]


class EnrollmentCreate(OctaviaModel):
    name: NodeName
    role: Literal["l4", "l7"]
    cluster: NodeName = "default"
    # None: the node may register any (shown to operators only).
    address: IpAddressStr | None = None
    # Where the L4 tier sends an L7 node its VIPs' packets: fixed here, never by the node.
    data_address: IpAddressStr | None = None


class EnrollmentCreateBody(OctaviaModel):
    enrollment: EnrollmentCreate


class EnrollmentRotate(OctaviaModel):
    # How long the old credential keeps working (0: it stops now).
    grace_seconds: StrictInt = Field(default=0, ge=0, le=7 * 86400)
