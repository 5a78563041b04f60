"""Keyed audit chain: MACs on the head and purge anchors, and key anchors.

Records written before a key was configured keep their plain SHA-256 hashes; the
first record written with a key is preceded by a key anchor naming the record it
continues from, so ``verify`` checks the older part as a legacy segment.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 14:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("audit_chain_head", sa.Column("key_id", sa.String(length=32), nullable=True))
    op.add_column("audit_chain_head", sa.Column("mac", sa.String(length=64), nullable=True))
    op.add_column("audit_purges", sa.Column("mac", sa.String(length=64), nullable=True))
    op.create_table(
        "audit_key_anchors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("after_seq", sa.BigInteger(), nullable=False),
        sa.Column("after_hash", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_key_anchors")),
    )


def downgrade() -> None:
    op.drop_table("audit_key_anchors")
    with op.batch_alter_table("audit_purges") as batch:
        batch.drop_column("mac")
    with op.batch_alter_table("audit_chain_head") as batch:
        batch.drop_column("mac")
        batch.drop_column("key_id")
