"""Node credentials: enrol, rotate, revoke, and what a registration may claim. A credential
is a random bearer secret stored hashed (SHA-256: it has 256 bits of entropy, a slow hash
adds nothing); it names one node, with the role, cluster and addresses the admin gave."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.controller.auth import NODE_SECRET_PREFIX, NodeGrant, new_secret, secret_hash
from shoal.controller.db.models import Event, Node, NodeCredential, utcnow
from shoal.controller.errors import BadRequest, Conflict, Forbidden, NotFound
from shoal.controller.schemas.enrollment import EnrollmentCreate

__all__ = ["SECRET_PREFIX", "enroll", "get", "registration", "revoke", "rotate", "view"]

SECRET_PREFIX = NODE_SECRET_PREFIX


def view(cred: NodeCredential) -> dict[str, Any]:
    def when(t: dt.datetime | None) -> str | None:
        return t.strftime("%Y-%m-%dT%H:%M:%S") if t else None

    return {
        "name": cred.name,
        "role": cred.role,
        "cluster": cred.cluster,
        "address": cred.address,
        "data_address": cred.data_address,
        "status": "REVOKED" if cred.revoked_at else "ACTIVE",
        "created_at": when(cred.created_at),
        "rotated_at": when(cred.rotated_at),
        "revoked_at": when(cred.revoked_at),
        "previous_valid_until": when(cred.previous_until),
    }


def _event(session: Session, name: str, kind: str, message: str) -> None:
    node_id = session.scalar(select(Node.id).where(Node.name == name))
    session.add(Event(node_id=node_id, kind=kind, message=message))


def get(session: Session, name: str) -> NodeCredential:
    cred = session.get(NodeCredential, name)
    if cred is None:
        raise NotFound.of("Enrollment", name)
    return cred


def enroll(session: Session, spec: EnrollmentCreate) -> tuple[NodeCredential, str]:
    """A new credential for a node name not enrolled (or whose credential was revoked)."""
    if spec.role == "l7" and spec.data_address is None:
        raise BadRequest("an L7 node is enrolled with its data_address (the L4 tier sends there)")
    cred = session.get(NodeCredential, spec.name)
    if cred is not None and cred.revoked_at is None:
        raise Conflict(
            f"node {spec.name} is already enrolled: rotate its credential or revoke it first"
        )
    node = session.scalar(select(Node).where(Node.name == spec.name))
    if node is not None and node.role != spec.role:
        raise Conflict(
            f"node {spec.name} exists as an {node.role} node: delete it before enrolling "
            f"the name as {spec.role}"
        )
    if cred is None:
        cred = NodeCredential(name=spec.name)
        session.add(cred)
    secret = new_secret(SECRET_PREFIX)
    for key, value in spec.model_dump().items():
        setattr(cred, key, value)
    cred.secret_hash = secret_hash(secret)
    cred.created_at = utcnow()
    cred.previous_hash = cred.previous_until = cred.rotated_at = cred.revoked_at = None
    session.flush()
    _event(session, spec.name, "node_enrolled", f"{spec.role} node {spec.name} enrolled")
    return cred, secret


def rotate(session: Session, name: str, grace_seconds: int) -> tuple[NodeCredential, str]:
    cred = get(session, name)
    if cred.revoked_at is not None:
        raise Conflict(f"the credential of node {name} was revoked: enrol the node again")
    secret = new_secret(SECRET_PREFIX)
    now = utcnow()
    if grace_seconds:
        cred.previous_hash = cred.secret_hash
        cred.previous_until = now + dt.timedelta(seconds=grace_seconds)
    else:
        cred.previous_hash = cred.previous_until = None
    cred.secret_hash = secret_hash(secret)
    cred.rotated_at = now
    _event(
        session,
        name,
        "credential_rotated",
        f"node {name}: new credential; the old one works {grace_seconds} s more",
    )
    return cred, secret


def revoke(session: Session, name: str) -> None:
    cred = get(session, name)
    cred.revoked_at = utcnow()
    cred.previous_hash = cred.previous_until = None
    _event(session, name, "credential_revoked", f"node {name}: credential revoked")


def _same(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def registration(grant: NodeGrant, claimed: dict[str, Any]) -> dict[str, Any]:
    """The node's fields from a registration, checked against its enrolment: the name, role
    and cluster must be the enrolled ones, and an enrolled address may only be repeated or
    left out (it is then filled in). Raises Forbidden naming what was enrolled."""
    fixed = {"name": grant.name, "role": grant.role, "cluster": grant.cluster}
    for key, enrolled in fixed.items():
        if claimed.get(key) != enrolled:
            raise Forbidden(
                f"node {grant.name} is enrolled with {key} {enrolled!r}, not {claimed.get(key)!r}"
            )
    out = dict(claimed)
    for key in ("address", "data_address"):
        enrolled = getattr(grant, key)
        value = claimed.get(key)
        if enrolled is None and key == "address":
            continue  # not enrolled: shown to operators, used for nothing
        if value is not None and not _same(value, enrolled):
            raise Forbidden(f"node {grant.name} is enrolled with {key} {enrolled!r}, not {value!r}")
        out[key] = enrolled
    return out
