from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meterline.db import Base, BigIntPK
from meterline.kit.sqltypes import DecimalText


class Event(Base):
    """One usage event, as received. Append-only.

    ``customer_id`` is the customer the event named; ``billing_customer_id`` the one it
    is attributed to (its top-most organization, or itself). No foreign keys here: the
    ingestion path checks them, and every insert saved is throughput.
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("workspace_id", "event_id"),
        Index(
            "ix_events_billing", "workspace_id", "billing_customer_id", "event_type", "timestamp"
        ),
    )

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[int] = mapped_column(BigInteger)
    billing_customer_id: Mapped[int] = mapped_column(BigInteger)
    subject: Mapped[str | None] = mapped_column(String(255))
    timestamp: Mapped[datetime]
    received_at: Mapped[datetime]
    quantity: Mapped[Decimal] = mapped_column(DecimalText())
    properties: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(32))
    # A voided event counts nowhere (rollups, counters, credits); it stays listed.
    voided_at: Mapped[datetime | None]
    void_reason: Mapped[str | None] = mapped_column(String(500))


class IngestStat(Base):
    """What reached ingestion, per workspace and hour of receipt (the dashboard's
    chart): written in the transaction that stored the events, so it is exact."""

    __tablename__ = "ingest_stats"

    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    # Each writer thread adds to its own row of the hour (a random 31-bit shard; readers
    # add them up), so concurrent transactions, in one process or in several, never
    # wait on one another for the statistics (nor deadlock over them).
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, server_default="0")
    accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    duplicates: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    unmetered: Mapped[int] = mapped_column(BigInteger, default=0)
