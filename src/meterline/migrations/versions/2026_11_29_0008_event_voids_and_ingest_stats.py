"""Event voids (an event stops counting, stays listed) and hourly ingestion statistics;
allocation keys wide enough for a 100-character plan key and a period start with
microseconds (120 characters were not: PostgreSQL refused the grant).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _allocation_keys(length: int) -> None:
    for table, column in (("credit_wallets", "allocated"), ("credit_grants", "allocation")):
        with op.batch_alter_table(table) as batch:  # SQLite copies the table; PG alters
            batch.alter_column(column, type_=sa.String(length=length), existing_nullable=True)


def upgrade() -> None:
    _allocation_keys(200)
    # Plain ADD COLUMN (nullable): instant on both databases, whatever the table's size.
    op.add_column("events", sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("events", sa.Column("void_reason", sa.String(length=500), nullable=True))
    op.create_table(
        "ingest_stats",
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("unmetered", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_ingest_stats_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "hour", name=op.f("pk_ingest_stats")),
    )


def downgrade() -> None:
    _allocation_keys(120)
    op.drop_table("ingest_stats")
    with op.batch_alter_table("events") as batch:  # SQLite drops columns by copying
        batch.drop_column("void_reason")
        batch.drop_column("voided_at")
