"""Support sessions: one row per assistant conversation, expiring after its TTL.

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
        "support_sessions",
        sa.Column("assistant", sa.String(64), nullable=False),
        sa.Column("conversation", sa.String(320), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("handoff", sa.Boolean(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("assistant", "conversation", name="pk_support_sessions"),
    )
    op.create_index("ix_support_sessions_expires_us", "support_sessions", ["expires_us"])
    op.create_index("ix_support_sessions_handoff", "support_sessions", ["handoff"])


def downgrade() -> None:
    op.drop_table("support_sessions")
