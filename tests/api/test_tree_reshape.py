"""A write publishes the tree its rows now form, however the rows changed: through the
relationships, by a moved row (an owner key set directly) or by a bulk statement. The
writer reloads the loaded lists only when one of these happened (services/writes.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from shoal.controller.auth import Principal
from shoal.controller.db.models import LoadBalancer, Member
from shoal.controller.services import status

from .helpers import Api

ADMIN = Principal(name="admin", project_id="admin", role="admin")


def _published_members(client: TestClient, lb_id: str) -> dict[str, set[str]]:
    """pool id -> the member addresses its newest revision publishes."""
    with client.app.state.shoal.db.read() as session:  # type: ignore[attr-defined]
        lb = session.get(LoadBalancer, lb_id)
        assert lb is not None
        config = json.loads(lb.current_config)
    return {p["id"]: {m["address"] for m in p["members"]} for p in config["pools"]}


def _write(client: TestClient, lb_id: str, body: Callable[[Session, Any], None]) -> None:
    writer = client.app.state.shoal.writer  # type: ignore[attr-defined]
    with writer.change(lb_id, ADMIN, action="update") as ctx:
        body(ctx.session, ctx.lb)


def _two_pools(admin: Api) -> tuple[str, str, str, dict[str, Any]]:
    stack = admin.l4_stack(members=2)
    lb_id = stack["lb"]["id"]
    other = admin.pool(admin.listener(lb_id, port=81)["id"])["id"]
    return lb_id, stack["pool"]["id"], other, stack


def test_a_bulk_insert_and_delete_are_published(admin: Api, client: TestClient) -> None:
    lb_id, pool, _, stack = _two_pools(admin)
    gone = stack["members"][0]["id"]

    def body(session: Session, lb: Any) -> None:
        loaded = next(p for p in lb.pools if p.id == pool).members
        assert len(loaded) == 2  # loaded: the statements below make the list stale
        session.execute(delete(Member).where(Member.id == gone))
        session.execute(
            insert(Member).values(
                id="m-bulk", pool_id=pool, address="10.1.0.9", protocol_port=80, project_id="admin"
            )
        )

    _write(client, lb_id, body)
    assert _published_members(client, lb_id)[pool] == {"10.1.0.2", "10.1.0.9"}


def test_a_member_moved_by_its_key_is_published_in_its_new_pool(
    admin: Api, client: TestClient
) -> None:
    lb_id, pool, other, stack = _two_pools(admin)
    moved = stack["members"][1]["id"]

    def body(session: Session, lb: Any) -> None:
        row = next(m for p in lb.pools for m in p.members if m.id == moved)
        row.pool_id = other  # the key, not the relationship: both lists stay as loaded
        row.protocol_port = 81  # the other listener's port (L4: members keep the port)

    _write(client, lb_id, body)
    assert _published_members(client, lb_id) == {pool: {"10.1.0.1"}, other: {"10.1.0.2"}}


def test_a_status_only_bulk_update_does_not_reload_the_tree(admin: Api, client: TestClient) -> None:
    lb_id, pool, _, _ = _two_pools(admin)
    seen: list[bool] = []

    def body(session: Session, lb: Any) -> None:
        session.execute(
            update(Member)
            .where(Member.pool_id == pool)
            .values(provisioning_status="PENDING_UPDATE")
            .execution_options(synchronize_session=False, **{status.STATUS_ONLY: True})
        )
        seen.append(bool(session.info.get("shoal_tree_reshaped")))

    _write(client, lb_id, body)
    assert seen == [False]
    assert _published_members(client, lb_id)[pool] == {"10.1.0.1", "10.1.0.2"}


def test_a_create_answers_with_what_respond_builds_after_settling(client: TestClient) -> None:
    """Writer.create honours ctx.respond as change does: the body is built from the rows
    once revision 1 is published and its statuses are settled."""
    writer = client.app.state.shoal.writer  # type: ignore[attr-defined]
    with writer.create(ADMIN, "admin", None, None, any_subnet=True) as ctx:
        ctx.lb.provider, ctx.lb.kind = "noop", "l4"
        ctx.respond = lambda: {"id": ctx.lb.id, "status": ctx.lb.provisioning_status}
    # noop: nothing to wait for, so revision 1 settles ACTIVE in the same transaction
    assert ctx.body == {"id": ctx.lb.id, "status": "ACTIVE"} and ctx.revision == 1
