"""Upgrades keep data: a database made by an older schema, with rows in it, upgrades to the
latest one (on SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, text

from shoal.controller.db.migrate import alembic_config, upgrade


def test_upgrade_from_the_first_schema_keeps_rows(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "0001")
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO nodes (id, name, role, cluster, capacity, admin_state, registered_at,"
                " last_seen, applied_seq, counters, digests) VALUES ('n1', 'l4-a', 'l4', 'c',"
                " 100, 'ACTIVE', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 7, '{}', '{}')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO tokens (id, name, secret_hash, project_id, role, created_at) VALUES"
                " ('t1', 'ops', 'abc', 'p', 'admin', '2026-01-01 00:00:00')"
            )
        )
    upgrade(database_url)
    with engine.begin() as conn:
        node = conn.execute(text("SELECT name, applied_seq, health, health_streak FROM nodes"))
        assert node.one() == ("l4-a", 7, "UNKNOWN", 0)
        assert conn.execute(text("SELECT name FROM tokens")).scalar_one() == "ops"
        assert conn.execute(text("SELECT count(*) FROM certificates")).scalar_one() == 0
    engine.dispose()
