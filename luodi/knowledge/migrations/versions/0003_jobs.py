"""Background jobs and the embedding model of each collection.

* ``kb_jobs``: ingests, syncs and re-embeddings run in the background, with progress.
* ``kb_collections.embedder``: ``name/dim`` of the model the collection's vectors came
  from (NULL for existing collections: recorded at their next ingest or re-embedding).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("kb_collections") as batch:
        batch.add_column(sa.Column("embedder", sa.String(256), nullable=True))
    op.create_table(
        "kb_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("collection", sa.String(64), nullable=False, index=True),
        sa.Column("owner", sa.String(160), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("files_total", sa.Integer(), nullable=False),
        sa.Column("files_done", sa.Integer(), nullable=False),
        sa.Column("chunks_total", sa.Integer(), nullable=False),
        sa.Column("chunks_done", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kb_jobs")
    with op.batch_alter_table("kb_collections") as batch:
        batch.drop_column("embedder")
