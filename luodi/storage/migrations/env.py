"""Alembic environment: runs on the connection ``Database.migrate`` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from luodi.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


_run()
