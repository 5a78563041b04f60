"""Alembic environment of the knowledge catalog: runs on the connection ``migrate`` hands over.

The catalog keeps its own version table (``kb_alembic_version``), so it can live in the
same database as ``luodi.storage``'s tables without either set of migrations seeing
the other's.
"""

from __future__ import annotations

from alembic import context

from luodi.knowledge.catalog import VERSION_TABLE, CatalogBase

config = context.config
context.configure(
    connection=config.attributes["connection"],
    target_metadata=CatalogBase.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
