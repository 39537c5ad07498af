from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, true
from sqlalchemy.orm import Mapped, mapped_column

from meterline.db import Base, BigIntPK
from meterline.kit.time import utc_now


class Workspace(Base):
    """One tenant. Every other row belongs to exactly one workspace."""

    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    auto_create_customers: Mapped[bool] = mapped_column(default=True, server_default=true())
    event_lateness_days: Mapped[int] = mapped_column(default=35, server_default="35")
    # Closed periods' invoices stay drafts this long (late events still count).
    invoice_grace_days: Mapped[int] = mapped_column(default=0, server_default="0")
    # Raw events older than this are deleted (rollups stay); null: kept forever.
    event_retention_days: Mapped[int | None]
    # Signs customer tokens (auth/tokens.py); made on first use.
    token_secret: Mapped[str | None] = mapped_column(String(100))
    # A plan id (no foreign key: plans and workspaces would reference each other, and
    # plans are never deleted).
    default_plan_id: Mapped[int | None] = mapped_column(BigInteger)
    # Bumped with every change to customers' entitlements (see workspaces/terms.py).
    terms_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
