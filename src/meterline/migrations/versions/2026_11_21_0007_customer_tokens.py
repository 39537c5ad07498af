"""The workspace secret that signs customer tokens.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 14:14:38.356416
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("workspaces", sa.Column("token_secret", sa.String(length=100), nullable=True))


def downgrade() -> None:
    op.drop_column("workspaces", "token_secret")
