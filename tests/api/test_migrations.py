"""Upgrades keep data: a database made by an older schema, with rows in it, upgrades to the
latest one (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json

from alembic import command
from sqlalchemy import Engine, create_engine, inspect, text

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


def test_0011_moves_digests_into_rows_and_traffic_into_columns(database_url: str) -> None:
    """A node's JSON digests become its rows and its traffic its own columns; the rest of
    its counters stay; downgrade folds them back."""
    command.upgrade(alembic_config(database_url), "0010")
    engine = create_engine(database_url)
    digests = '{"lb-1": {"tcp://10.0.0.1:80": "d1"}, "lb-2": {}}'
    counters = '{"flood": {"active": false}, "load_balancers": {"lb-1": {"bytes_in": 5}},'
    counters += ' "backends": [{"address": "10.1.0.1"}]}'
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO nodes (id, name, role, cluster, capacity, admin_state, registered_at,"
                " last_seen, applied_seq, counters, digests, health, health_streak, report_seq)"
                " VALUES ('n1', 'l4-a', 'l4', 'c', 100, 'ACTIVE', '2026-01-01 00:00:00',"
                " '2026-01-01 00:00:00', 7, :counters, :digests, 'UNKNOWN', 0, 41)"
            ),
            {"counters": counters, "digests": digests},
        )
    upgrade(database_url)
    with engine.begin() as conn:
        rows = conn.execute(
            text("SELECT load_balancer_id, digests FROM node_lb_digests WHERE node_id = 'n1'")
        ).all()
        got = {lb: json.loads(d) if isinstance(d, str) else d for lb, d in rows}
        assert got == {"lb-1": {"tcp://10.0.0.1:80": "d1"}, "lb-2": {}}
        row = conn.execute(
            text("SELECT counters, lb_traffic, backend_traffic, report_seq FROM nodes")
        ).one()
        parsed = [json.loads(v) if isinstance(v, str) else v for v in row[:3]]
        assert parsed == [
            {"flood": {"active": False}},
            {"lb-1": {"bytes_in": 5}},
            [{"address": "10.1.0.1"}],
        ]
        assert row[3] == 41  # the agent's next delta still applies
    command.downgrade(alembic_config(database_url), "0010")
    with engine.begin() as conn:
        row = conn.execute(text("SELECT counters, digests FROM nodes")).one()
        back = [json.loads(v) if isinstance(v, str) else v for v in row]
        assert back == [json.loads(counters), json.loads(digests)]
    engine.dispose()


def test_0012_adds_the_unsettled_index_and_downgrade_drops_it(database_url: str) -> None:
    config = alembic_config(database_url)
    command.upgrade(config, "0012")
    engine = create_engine(database_url)
    try:
        assert "ix_load_balancers_unsettled" in _index_names(engine, "load_balancers")
        command.downgrade(config, "0011")
        assert "ix_load_balancers_unsettled" not in _index_names(engine, "load_balancers")
        command.upgrade(config, "0012")
        assert "ix_load_balancers_unsettled" in _index_names(engine, "load_balancers")
    finally:
        engine.dispose()


def _index_names(engine: Engine, table: str) -> set[str]:
    return {str(index["name"]) for index in inspect(engine).get_indexes(table)}
