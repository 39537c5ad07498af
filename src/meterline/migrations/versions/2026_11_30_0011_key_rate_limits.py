"""API keys' own request rates (issue 19): a key may carry its own rate and burst, in
place of the server-wide default, or be marked unlimited. Three columns on api_keys,
added in place (nullable, or with a constant default: instant on both databases).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column(
            "rate_limit_per_second",
            sa.String(length=80).with_variant(sa.Numeric(), "postgresql"),
            nullable=True,
        ),
    )
    op.add_column("api_keys", sa.Column("rate_limit_burst", sa.Integer(), nullable=True))
    op.add_column(
        "api_keys",
        sa.Column("rate_limit_unlimited", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:  # SQLite drops columns by copying
        batch.drop_column("rate_limit_unlimited")
        batch.drop_column("rate_limit_burst")
        batch.drop_column("rate_limit_per_second")
