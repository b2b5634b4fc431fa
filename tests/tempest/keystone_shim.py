"""Harness only: lets tempest's Keystone users call the controller until the controller
validates Keystone tokens itself. A token Shoal does not know is looked up in Keystone
(GET /v3/auth/tokens, cached for a minute) and its roles mapped as Octavia's defaults map
them. Not shipped in src/: the real Keystone support is its own piece of work."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from shoal.controller.auth import Principal, TokenAuthenticator
from shoal.controller.errors import Unauthorized

ADMIN_ROLES = {"admin", "load-balancer_admin"}
MEMBER_ROLES = {"member", "load-balancer_member"}
READER_ROLES = {"reader", "load-balancer_observer", "load-balancer_global_observer"}


class KeystoneShim:
    def __init__(self, keystone_url: str, service_token: str) -> None:
        self.keystone_url = keystone_url.rstrip("/")
        self.service_token = service_token
        self.local = TokenAuthenticator()
        self.cache: dict[str, tuple[float, Principal]] = {}
        self.lock = threading.Lock()

    def authenticate(self, request: Request, session: Session) -> Principal:
        try:
            return self.local.authenticate(request, session)
        except Unauthorized:
            token = request.headers.get("x-auth-token", "")
            if not token:
                raise
        with self.lock:
            hit = self.cache.get(token)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        principal = self._lookup(token)
        with self.lock:
            self.cache[token] = (time.monotonic() + 60, principal)
        return principal

    def _lookup(self, token: str) -> Principal:
        req = urllib.request.Request(
            f"{self.keystone_url}/v3/auth/tokens",
            headers={"X-Auth-Token": self.service_token, "X-Subject-Token": token},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                body: dict[str, Any] = json.load(resp)["token"]
        except Exception:
            raise Unauthorized("the token is not valid") from None
        roles = {r["name"] for r in body.get("roles", [])}
        project = (body.get("project") or {}).get("id", "")
        if roles & ADMIN_ROLES:
            role = "admin"
        elif roles & MEMBER_ROLES:
            role = "member"
        elif roles & READER_ROLES:
            role = "reader"
        else:
            raise Unauthorized("no load-balancer role in this token")
        return Principal(body["user"]["name"], project, role)
