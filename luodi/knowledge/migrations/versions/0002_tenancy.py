"""Tenancy: collections belong to a tenant or are shared; documents to an owner scope.

* ``kb_collections.tenant`` (NULL: none yet) and ``shared`` (false). Collections made
  before this revision get no tenant: only holders of ``kb:<name>:manage`` see them
  until one assigns a tenant or shares them (``PATCH /v1/knowledge/{kb}``). Failing
  closed is the point: the old catalog cannot say which tenant a collection was for.
* ``kb_documents.owner`` ("": made before tenancy; such a document is changed only by
  managers until its collection is given a tenant, which then owns it). Names are
  unique per (collection, name, owner) instead of (collection, name).
* ``kb_sources.owner``: the scope that owns what a source syncs.

Existing access lists are kept; an empty one still means every reader of the
collection, which after this revision is no one but managers until it is assigned.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# Unnamed unique constraints are reflected under this name by batch mode (SQLite) and
# are named by this convention on PostgreSQL.
_NAMING = {"uq": "%(table_name)s_%(column_0_name)s_%(column_1_name)s_key"}


def upgrade() -> None:
    with op.batch_alter_table("kb_collections") as batch:
        batch.add_column(sa.Column("tenant", sa.String(128), nullable=True))
        batch.add_column(
            sa.Column("shared", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("kb_documents", naming_convention=_NAMING) as batch:
        batch.add_column(sa.Column("owner", sa.String(160), nullable=False, server_default=""))
        batch.drop_constraint("kb_documents_collection_name_key", type_="unique")
        batch.create_unique_constraint(
            "uq_kb_documents_collection_name_owner", ["collection", "name", "owner"]
        )
    with op.batch_alter_table("kb_sources") as batch:
        batch.add_column(sa.Column("owner", sa.String(160), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("kb_sources") as batch:
        batch.drop_column("owner")
    with op.batch_alter_table("kb_documents") as batch:
        batch.drop_constraint("uq_kb_documents_collection_name_owner", type_="unique")
        batch.drop_column("owner")
        batch.create_unique_constraint("kb_documents_collection_name_key", ["collection", "name"])
    with op.batch_alter_table("kb_collections") as batch:
        batch.drop_column("shared")
        batch.drop_column("tenant")
