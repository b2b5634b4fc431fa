"""Alembic environment: the URL comes from the caller (shoal.controller.db.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from shoal.controller.db.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or ""


def run() -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=url.startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
