from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from meterline.db import Base, BigIntPK
from meterline.kit.sqltypes import DecimalText
from meterline.kit.time import utc_now


class Meter(Base):
    """How events of one type become a number."""

    __tablename__ = "meters"
    __table_args__ = (
        UniqueConstraint("workspace_id", "key"),
        Index("ix_meters_workspace_event_type", "workspace_id", "event_type"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(255))
    aggregation: Mapped[str] = mapped_column(String(20))
    value_property: Mapped[str | None] = mapped_column(String(255))
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    group_by: Mapped[list[str]] = mapped_column(default=list)
    unit: Mapped[str | None] = mapped_column(String(50))
    # The Stripe meter's event_name its usage is reported to (Stripe sync).
    stripe_event_name: Mapped[str | None] = mapped_column(String(100))
    # Some plan limits this meter: ingestion keeps its limit counters current.
    limited: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Some plan prices this meter in credits: ingestion charges its usage to the ledger.
    credited: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class MeterRollup(Base):
    """A meter's running totals per customer, 15-minute UTC bucket and group.

    ``customer_id`` is the customer the events named (a member, say); reads for an
    organization go through ``billing_customer_id``. Kept current as events land.
    """

    __tablename__ = "meter_rollups"
    __table_args__ = (
        Index("ix_meter_rollups_billing", "meter_id", "billing_customer_id", "bucket_start"),
    )

    meter_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)
    group_key: Mapped[str] = mapped_column(String(1000), primary_key=True)
    billing_customer_id: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(BigInteger)
    sum: Mapped[Decimal] = mapped_column(DecimalText())
    min: Mapped[Decimal | None] = mapped_column(DecimalText())
    max: Mapped[Decimal | None] = mapped_column(DecimalText())
    latest_key: Mapped[str | None] = mapped_column(String(60))
    latest_value: Mapped[Decimal | None] = mapped_column(DecimalText())


class MeterUnique(Base):
    """The distinct values a unique_count meter saw, per customer, bucket and group."""

    __tablename__ = "meter_uniques"
    __table_args__ = (
        Index("ix_meter_uniques_billing", "meter_id", "billing_customer_id", "bucket_start"),
    )

    meter_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)
    group_key: Mapped[str] = mapped_column(String(1000), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    billing_customer_id: Mapped[int] = mapped_column(BigInteger)
