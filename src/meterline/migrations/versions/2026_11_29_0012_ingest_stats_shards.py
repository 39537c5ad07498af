"""Ingest statistics in shards (issue 19): each writer thread adds to a row of its own
(``shard``, a random 31-bit number per thread) for the workspace's hour, so concurrent
transactions on PostgreSQL (two `serve` processes' decisions, say) no longer queue for
one row lock until they commit, nor deadlock over it. Readers add the shards up.
Existing rows become shard 0.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 20:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_stats") as batch:  # SQLite changes a key by copying
        batch.add_column(sa.Column("shard", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_constraint("pk_ingest_stats", type_="primary")
        batch.create_primary_key("pk_ingest_stats", ["workspace_id", "hour", "shard"])


def downgrade() -> None:  # the shards of each hour added up into one row again
    totals = sa.text(
        "SELECT workspace_id, hour, SUM(accepted), SUM(duplicates), SUM(rejected), "
        "SUM(unmetered) FROM ingest_stats GROUP BY workspace_id, hour"
    )
    rows = op.get_bind().execute(totals).all()
    op.execute("DELETE FROM ingest_stats")
    with op.batch_alter_table("ingest_stats") as batch:
        batch.drop_constraint("pk_ingest_stats", type_="primary")
        batch.drop_column("shard")
        batch.create_primary_key("pk_ingest_stats", ["workspace_id", "hour"])
    names = ("workspace_id", "hour", "accepted", "duplicates", "rejected", "unmetered")
    table = sa.table("ingest_stats", *(sa.column(name) for name in names))
    op.bulk_insert(table, [dict(zip(names, row, strict=True)) for row in rows])
