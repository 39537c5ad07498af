from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meterline.db import Base
from meterline.kit.sqltypes import DecimalText
from meterline.kit.time import utc_now


class Invoice(Base):
    """A subscription's closed period: ``draft`` → ``finalized`` (numbered, immutable)
    → ``void``. One per subscription and period start (the unique key makes closing a
    period idempotent, whichever worker does it)."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("subscription_id", "period_start"),
        UniqueConstraint("workspace_id", "number"),
        Index("ix_invoices_customer_id", "customer_id", "period_start"),
        Index("ix_invoices_workspace_id", "workspace_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id"))
    subscription_id: Mapped[str] = mapped_column(String(40), ForeignKey("subscriptions.id"))
    number: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    plan: Mapped[str] = mapped_column(String(100))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    lines: Mapped[list[dict[str, Any]]]
    total: Mapped[Decimal] = mapped_column(DecimalText())
    finalize_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    finalized_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]
    # Its twin in Stripe (Stripe sync, invoices mode): id, Stripe's status, and whether
    # it is paid (unpaid, paid, failed: from Stripe's webhooks).
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255))
    stripe_status: Mapped[str | None] = mapped_column(String(20))
    payment_status: Mapped[str | None] = mapped_column(String(20))


class InvoiceNumber(Base):
    """The last invoice number a workspace gave. Taken in the finalizing transaction
    (a row lock on PostgreSQL), so numbers have no gaps: a rolled-back finalization
    gives its number back."""

    __tablename__ = "invoice_numbers"

    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    last_number: Mapped[int] = mapped_column(BigInteger)
