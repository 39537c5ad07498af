from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from meterline.db import Base, BigIntPK
from meterline.kit.sqltypes import DecimalText
from meterline.kit.time import utc_now


class UsageCounter(Base):
    """A billing customer's running total of one meter in one limit window.

    Made (from the rollups) the first time a check needs the window, then kept
    current by every event that lands in ``[counts_from, window_end)``; a limit reset
    moves ``counts_from`` to the moment of the reset. ``used`` is the raw sum of
    contributions (events for count meters, seconds for duration meters)."""

    __tablename__ = "usage_counters"
    __table_args__ = (UniqueConstraint("customer_id", "meter_id", "kind", "window_start"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigInteger)
    meter_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("meters.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # the limit's window: day, month, …
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    counts_from: Mapped[datetime]
    used: Mapped[Decimal] = mapped_column(DecimalText())


class UsageGuard(Base):
    """The row a writer locks before it changes a (meter, billing customer)'s limited
    usage on PostgreSQL (see ``counters.guard``); ``hits`` counts those writes."""

    __tablename__ = "usage_guards"

    meter_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hits: Mapped[int] = mapped_column(BigInteger, default=0)


class Reservation(Base):
    """Allowance held for work whose size is known afterwards (SPEC §4).

    ``amount`` is what the hold counts against limits (the meter's measure of the
    held usage) and ``credits`` what it holds off the customer's balance; both count
    while ``status`` is ``held`` and ``expires_at`` is ahead,
    so a hold lapses at its TTL whether or not anything runs then."""

    __tablename__ = "reservations"
    __table_args__ = (
        Index("ix_reservations_live", "customer_id", "meter_id", "status", "expires_at"),
        # Live holds by expiry, for the job that marks lapsed ones (settled and released
        # holds leave the index).
        Index(
            "ix_reservations_held_expiry",
            "expires_at",
            sqlite_where=text("status = 'held'"),
            postgresql_where=text("status = 'held'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    customer_id: Mapped[int] = mapped_column(BigInteger)  # the billing customer
    subject_customer_id: Mapped[int] = mapped_column(BigInteger)  # who asked (a member, say)
    meter_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("meters.id", ondelete="CASCADE"))
    quantity: Mapped[Decimal] = mapped_column(DecimalText())
    amount: Mapped[Decimal] = mapped_column(DecimalText())
    credits: Mapped[Decimal | None] = mapped_column(DecimalText())  # held off the balance
    subject: Mapped[str | None] = mapped_column(String(255))
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(10), default="held")
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    closed_at: Mapped[datetime | None]
    settled_quantity: Mapped[Decimal | None] = mapped_column(DecimalText())
    event_id: Mapped[str | None] = mapped_column(String(255))
