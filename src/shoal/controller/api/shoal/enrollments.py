"""Node enrolment (admins): the credential each node's agent authenticates with, bound to
that node's name, role, cluster and addresses. Its secret is shown once, at enrolment and
at each rotation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import select

from shoal.controller.api.deps import CurrentPrincipal, State
from shoal.controller.db.models import NodeCredential
from shoal.controller.schemas.enrollment import EnrollmentCreateBody, EnrollmentRotate
from shoal.controller.services import enrollment

router = APIRouter(tags=["nodes"])


@router.post("/enrollments", status_code=201)
def enroll(body: EnrollmentCreateBody, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    principal.require_admin()
    with state.db.write() as session:
        cred, secret = enrollment.enroll(session, body.enrollment)
        return {"enrollment": {**enrollment.view(cred), "credential": secret}}


@router.get("/enrollments")
def list_enrollments(state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    principal.require_admin()
    with state.db.read() as session:
        rows = session.scalars(select(NodeCredential).order_by(NodeCredential.name))
        return {"enrollments": [enrollment.view(c) for c in rows]}


@router.get("/enrollments/{name}")
def get_enrollment(name: str, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    principal.require_admin()
    with state.db.read() as session:
        return {"enrollment": enrollment.view(enrollment.get(session, name))}


@router.post("/enrollments/{name}/rotate")
def rotate(
    name: str, state: State, principal: CurrentPrincipal, body: EnrollmentRotate | None = None
) -> dict[str, Any]:
    """A new credential; the old one stops working now, or after grace_seconds."""
    principal.require_admin()
    grace = body.grace_seconds if body else 0
    with state.db.write() as session:
        cred, secret = enrollment.rotate(session, name, grace)
        return {"enrollment": {**enrollment.view(cred), "credential": secret}}


@router.delete("/enrollments/{name}", status_code=204)
def revoke(name: str, state: State, principal: CurrentPrincipal) -> Response:
    """Revokes the node's credential at once (its agent gets 401 from then on)."""
    principal.require_admin()
    with state.db.write() as session:
        enrollment.revoke(session, name)
    return Response(status_code=204)
