"""The queries that run on every node report and every feed answer use their index on a
database built by the migrations (not by create_all, whose models declare the same
indexes and would hide a migration that lost one), on SQLite and PostgreSQL.

Statement counts cannot see a full scan; these plans can."""

from __future__ import annotations

from sqlalchemy import Engine, Select, create_engine, text

from shoal.controller.db.migrate import upgrade
from shoal.controller.services.feed import bounds_query
from shoal.controller.services.status import unsettled_query


def _plan(engine: Engine, query: Select) -> str:  # type: ignore[type-arg]
    sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("EXPLAIN QUERY PLAN " + sql)).all()
            return "\n".join(str(row[-1]) for row in rows)
        # Planned as if the table were large: on a near-empty one a sequential scan is
        # cheapest, and the question is whether the index can serve the query at all.
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        return "\n".join(str(row[0]) for row in conn.execute(text("EXPLAIN " + sql)))


def test_pending_load_balancers_are_read_through_the_partial_index(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine(database_url)
    try:
        plan = _plan(engine, unsettled_query())
    finally:
        engine.dispose()
    assert "ix_load_balancers_unsettled" in plan, plan


def test_feed_bounds_read_two_ends_of_the_key_not_the_table(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine(database_url)
    try:
        plan = _plan(engine, bounds_query())
    finally:
        engine.dispose()
    if engine.dialect.name == "sqlite":
        assert "SCAN changes" not in plan, plan
        assert plan.count("SEARCH changes") == 2, plan
    else:
        assert "Seq Scan" not in plan, plan
        assert plan.count("Index Only Scan") + plan.count("Index Scan") >= 2, plan
