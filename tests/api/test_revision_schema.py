"""Revisions written by an older schema of the configuration still roll back (through
shoal.wire.config.upgrade_config); a newer schema than this controller knows is refused with
a 400, not guessed at."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from shoal.controller.db.models import Revision
from shoal.controller.services import tree
from shoal.wire.config import (
    SCHEMA_VERSION,
    HealthMonitorConfig,
    L7PolicyConfig,
    L7RuleConfig,
    ListenerConfig,
    LoadBalancerConfig,
    MemberConfig,
    PoolConfig,
    upgrade_config,
)

from .helpers import Api

# Fields that revisions written before them do not have (version 1 documents).
NEWER_LB = ("schema_version", "vip_network_id", "tags", "availability_zone")
NEWER_LISTENER = ("allowed_cidrs", "tags", "timeout_tcp_inspect", "sni_container_refs")
NEWER_MEMBER = ("monitor_address", "monitor_port", "tags", "subnet_id")


def as_version_1(doc: dict[str, Any]) -> dict[str, Any]:
    old = {k: v for k, v in doc.items() if k not in NEWER_LB}
    old["listeners"] = [
        {k: v for k, v in li.items() if k not in NEWER_LISTENER} for li in doc["listeners"]
    ]
    old["pools"] = [
        {
            **pool,
            "members": [
                {k: v for k, v in m.items() if k not in NEWER_MEMBER} for m in pool["members"]
            ],
        }
        for pool in doc["pools"]
    ]
    return old


def rewrite_revision(client: TestClient, lb_id: str, number: int, doc: Any) -> None:
    db = client.app.state.shoal.db  # type: ignore[attr-defined]
    with db.write() as session:
        rev = session.scalar(
            select(Revision).where(Revision.load_balancer_id == lb_id, Revision.number == number)
        )
        assert rev is not None
        rev.config = json.dumps(doc)


def test_a_version_1_revision_rolls_back(client: TestClient, alice: Api) -> None:
    stack = alice.l4_stack(members=2)
    lb_id, pool_id = stack["lb"]["id"], stack["pool"]["id"]
    base = alice.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions/5")["revision"]["config"]
    assert base["schema_version"] == SCHEMA_VERSION
    rewrite_revision(client, lb_id, 5, as_version_1(base))
    alice.request("DELETE", f"/v2/lbaas/pools/{pool_id}/members/{stack['members'][0]['id']}")
    r = alice.request("POST", f"/v2/shoal/loadbalancers/{lb_id}/revisions/5/rollback")
    assert r.status_code == 201, r.text
    after = alice.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions/7")["revision"]
    # The missing fields took their defaults, which are what they were.
    assert after["config"] == base
    members = alice.ok("GET", f"/v2/lbaas/pools/{pool_id}/members")["members"]
    assert {m["id"] for m in members} == {m["id"] for m in stack["members"]}


def test_a_newer_schema_is_refused(client: TestClient, alice: Api) -> None:
    stack = alice.l4_stack(members=1)
    lb_id = stack["lb"]["id"]
    doc = alice.ok("GET", f"/v2/shoal/loadbalancers/{lb_id}/revisions/3")["revision"]["config"]
    rewrite_revision(client, lb_id, 3, {**doc, "schema_version": SCHEMA_VERSION + 1})
    r = alice.request("POST", f"/v2/shoal/loadbalancers/{lb_id}/revisions/3/rollback")
    assert r.status_code == 400 and "newer" in r.json()["faultstring"]
    # A document that does not parse is a 400 too (a hand-edited database), never a 500.
    rewrite_revision(client, lb_id, 3, {"listeners": "nope"})
    r = alice.request("POST", f"/v2/shoal/loadbalancers/{lb_id}/revisions/3/rollback")
    assert r.status_code == 400 and "faultstring" in r.json()


def test_the_model_covers_every_stored_field() -> None:
    """One contract: what tree.config_of writes is what the model reads."""
    pairs = [
        (tree.LB_FIELDS, LoadBalancerConfig),
        (tree.LISTENER_FIELDS, ListenerConfig),
        (tree.POOL_FIELDS, PoolConfig),
        (tree.MEMBER_FIELDS, MemberConfig),
        (tree.MONITOR_FIELDS, HealthMonitorConfig),
        (tree.POLICY_FIELDS, L7PolicyConfig),
        (tree.RULE_FIELDS, L7RuleConfig),
    ]
    for fields, model in pairs:
        assert set(fields) <= set(model.model_fields), model.__name__


def test_upgrade_is_idempotent_on_current_documents() -> None:
    doc = {"vip_address": "192.0.2.1", "listeners": [], "pools": []}
    once = upgrade_config(doc)
    assert once["schema_version"] == SCHEMA_VERSION
    assert upgrade_config(once) == once
