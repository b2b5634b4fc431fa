"""Octavia's default RBAC, applied to Keystone role names.

Octavia's policy (octavia/policies/base.py) checks, per request:
  load-balancer:admin          role:admin or role:load-balancer_admin
  load-balancer:global_observer role:load-balancer_global_observer
  load-balancer:member_and_owner role:load-balancer_member and the object's project
  load-balancer:observer_and_owner role:load-balancer_observer and the object's project
  project-member / project-reader (secure RBAC)  role:member / role:reader and the project
  load-balancer:read  = observer_and_owner, global_observer, member_and_owner, project-reader
                        or admin; load-balancer:write = member_and_owner, project-member or
                        admin; quotas are written by admins only.
Shoal's Principal has one role for its own project (admin, member, reader) and a flag for
reading every project; this module turns a token's role list into those."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["NO_ROLE_MESSAGE", "Grant", "grant_for"]

ADMIN_ROLES = frozenset({"admin", "load-balancer_admin"})
MEMBER_ROLES = frozenset({"member", "load-balancer_member"})
READER_ROLES = frozenset({"reader", "load-balancer_observer"})
GLOBAL_READER_ROLES = frozenset({"load-balancer_global_observer"})
# What Octavia answers a token whose roles allow nothing.
NO_ROLE_MESSAGE = "Policy does not allow this request to be performed."


@dataclass(frozen=True)
class Grant:
    role: str | None  # admin, member, reader; None: nothing in its own project
    global_read: bool  # may read every project (global observer, system reader)

    @property
    def allows_anything(self) -> bool:
        return self.role is not None or self.global_read


def grant_for(roles: Iterable[str], *, system_scope: bool = False) -> Grant:
    """Keystone compares role names case-insensitively, and so does oslo.policy."""
    names = {r.lower() for r in roles}
    if names & ADMIN_ROLES:
        return Grant("admin", True)
    global_read = bool(names & GLOBAL_READER_ROLES) or (system_scope and "reader" in names)
    if system_scope:
        # A system-scoped token has no project: only its global reading counts.
        return Grant(None, global_read)
    if names & MEMBER_ROLES:
        return Grant("member", global_read)
    if names & READER_ROLES:
        return Grant("reader", global_read)
    return Grant(None, global_read)
