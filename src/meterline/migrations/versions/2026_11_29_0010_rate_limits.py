"""Per-key request rate limits: one row of state per API key, shared by every process.
Touches nothing else (a table of its own; UNLOGGED on PostgreSQL).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 17:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_states",
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("tat_us", sa.BigInteger(), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_rate_limit_states_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_rate_limit_states")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # No write-ahead log for it: an update per request costs no WAL flush (measured
        # 4.0 ms → 0.4 ms p50 here); after a crash the table starts empty, which only
        # gives each key a fresh burst.
        op.execute("ALTER TABLE rate_limit_states SET UNLOGGED")


def downgrade() -> None:
    op.drop_table("rate_limit_states")
