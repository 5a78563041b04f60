"""The catalog as it was before tenancy: collections, documents, chunks, sources, reports.

A catalog made by an older luodi (``create_all``, no version table) is stamped at this
revision before the upgrade, so its tables are not created twice.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "kb_collections",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "kb_documents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "collection",
            sa.String(64),
            sa.ForeignKey("kb_collections.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("access", sa.JSON(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("source_id", sa.String(32), nullable=True),
        sa.Column("n_chunks", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("collection", "name"),
    )
    op.create_index("ix_kb_documents_collection", "kb_documents", ["collection"])
    op.create_index("ix_kb_documents_source_id", "kb_documents", ["source_id"])
    op.create_table(
        "kb_chunks",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column(
            "document_id",
            sa.String(32),
            sa.ForeignKey("kb_documents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("heading", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
    )
    op.create_index("ix_kb_chunks_document_id", "kb_chunks", ["document_id"])
    op.create_index("ix_kb_chunks_collection", "kb_chunks", ["collection"])
    op.create_table(
        "kb_sources",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "collection",
            sa.String(64),
            sa.ForeignKey("kb_collections.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("locations", sa.JSON(), nullable=False),
        sa.Column("schedule", sa.String(128), nullable=True),
        sa.Column("access", sa.JSON(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sync_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_kb_sources_collection", "kb_sources", ["collection"])
    op.create_table(
        "kb_sync_reports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("source_id", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
    )
    op.create_index("ix_kb_sync_reports_source_id", "kb_sync_reports", ["source_id"])


def downgrade() -> None:
    for table in ("kb_sync_reports", "kb_sources", "kb_chunks", "kb_documents", "kb_collections"):
        op.drop_table(table)
