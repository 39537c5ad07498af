"""The credit ledger (SPEC §1): per billing customer, append-only.

``credit_entries`` is the ledger: every change of a balance is one row (a grant, a
debit, an expiry, a void) with its signed amount and the balance after it. A debit,
expiry or void names the grants it took from in ``credit_draws``. Two caches sit on
top, both rebuildable from those rows and checked by ``meterline credits verify``:
``credit_wallets.balance`` (= the sum of the customer's entries) and
``credit_grants.remaining`` (= the grant's amount less its draws).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meterline.db import Base, BigIntPK
from meterline.kit.sqltypes import DecimalText
from meterline.kit.time import utc_now


class CreditWallet(Base):
    """A billing customer's credit state: the cached balance, the earliest expiry of a
    live grant (so a read knows without a query whether something expired), the last
    plan allocation granted, and its low-balance alert setting.

    On PostgreSQL every writer of a customer's ledger locks this row first."""

    __tablename__ = "credit_wallets"

    customer_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    balance: Mapped[Decimal] = mapped_column(DecimalText(), default=Decimal(0))
    next_expiry: Mapped[datetime | None]
    # The last allocation key: a plan key (up to 100) "@" the period's start (ISO, 32).
    allocated: Mapped[str | None] = mapped_column(String(200))
    low_threshold: Mapped[Decimal | None] = mapped_column(DecimalText())
    low_alerted: Mapped[bool] = mapped_column(default=False)
    depleted_alerted: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class CreditGrant(Base):
    """Credits given to a customer. ``remaining`` is what is left to draw; ``status``
    is ``live`` until the grant expires or is voided (a used-up grant stays live with
    nothing remaining). ``seq`` orders grants by age."""

    __tablename__ = "credit_grants"
    __table_args__ = (
        UniqueConstraint("customer_id", "allocation"),
        Index("ix_credit_grants_live", "customer_id", "status"),
        Index("ix_credit_grants_expiry", "status", "expires_at"),
    )

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    customer_id: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[Decimal] = mapped_column(DecimalText())
    remaining: Mapped[Decimal] = mapped_column(DecimalText())
    source: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None]
    description: Mapped[str | None] = mapped_column(String(1000))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # A plan allocation's key (plan and period): one grant per key and customer.
    allocation: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default="live")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    closed_at: Mapped[datetime | None]


class CreditEntry(Base):
    """One change of a customer's balance: ``kind`` grant / debit / expiry / void,
    ``amount`` signed (+ for a grant), ``balance_after`` the balance it left. ``at`` is
    when it took effect (an expiry's is the grant's ``expires_at``, even when it was
    written later, at the next read or debit). A usage debit names the event (or
    reservation) and the customer who used the credits (``subject_customer_id``, a
    member of an organization, say); ``uncovered`` is the cost the balance could not
    pay."""

    __tablename__ = "credit_entries"
    __table_args__ = (Index("ix_credit_entries_customer", "customer_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    workspace_id: Mapped[int] = mapped_column(BigInteger)
    customer_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(10))
    amount: Mapped[Decimal] = mapped_column(DecimalText())
    balance_after: Mapped[Decimal] = mapped_column(DecimalText())
    grant_id: Mapped[str | None] = mapped_column(String(40))
    subject_customer_id: Mapped[int | None] = mapped_column(BigInteger)
    subject: Mapped[str | None] = mapped_column(String(255))
    reference_type: Mapped[str | None] = mapped_column(String(20))
    reference: Mapped[str | None] = mapped_column(String(255))
    feature: Mapped[str | None] = mapped_column(String(100))
    quantity: Mapped[Decimal | None] = mapped_column(DecimalText())
    uncovered: Mapped[Decimal | None] = mapped_column(DecimalText())
    description: Mapped[str | None] = mapped_column(String(1000))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    at: Mapped[datetime]
    created_at: Mapped[datetime]


class CreditDraw(Base):
    """What one entry (a debit, expiry or void) took from one grant."""

    __tablename__ = "credit_draws"

    entry_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    grant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(DecimalText())
