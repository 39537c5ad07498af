from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from meterline.db import Base, BigIntPK
from meterline.kit.time import utc_now


class Customer(Base):
    """The billed entity, keyed by the app's own ``external_id`` within a workspace.

    Deleting archives the row (``deleted_at``): its history stays, and the external id
    is free to be used by a new customer.
    """

    __tablename__ = "customers"
    __table_args__ = (
        Index(
            "uq_customers_workspace_external_id_live",
            "workspace_id",
            "external_id",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_customers_parent_id", "parent_id"),
        Index("ix_customers_stripe_customer_id", "workspace_id", "stripe_customer_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    external_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    parent_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id"))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    attributes: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # The Stripe customer its usage and invoices go to (Stripe sync).
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
    deleted_at: Mapped[datetime | None]
