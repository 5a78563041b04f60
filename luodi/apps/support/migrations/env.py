"""Alembic environment of the support sessions: runs on the connection ``migrate`` hands over.

The sessions keep their own version table (``support_alembic_version``), so they live in
the platform database beside ``luodi.storage``'s tables without either set of migrations
seeing the other's.
"""

from __future__ import annotations

from alembic import context

from luodi.apps.support.sessions import VERSION_TABLE, SessionBase

config = context.config
context.configure(
    connection=config.attributes["connection"],
    target_metadata=SessionBase.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
