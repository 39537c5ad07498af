from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from meterline.db import Base, BigIntPK
from meterline.kit.sqltypes import DecimalText
from meterline.kit.time import utc_now


class StripeIntegration(Base):
    """A workspace's connection to Stripe. Kept when disconnected (the secret is wiped):
    its ``identifier_prefix`` keeps meter event identifiers stable across reconnects.
    Secrets are stored as they are (they must sign requests); protect the database."""

    __tablename__ = "stripe_integrations"

    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(20))  # connected, not_connected
    mode: Mapped[str] = mapped_column(String(20))  # meter_events, invoices
    secret_key: Mapped[str | None] = mapped_column(String(255))
    webhook_secret: Mapped[str | None] = mapped_column(String(255))
    report_delay_minutes: Mapped[int] = mapped_column(Integer, default=60)
    identifier_prefix: Mapped[str] = mapped_column(String(20))
    connected_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
    # The end of the last closed hour the aggregation accounted for.
    aggregated_through: Mapped[datetime | None]
    last_reported_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(1000))
    last_error_at: Mapped[datetime | None]


class StripeUsageSeries(Base):
    """One billing customer's usage of one meter as reported: ``measured`` is the exact
    usage accounted so far (raw units), ``sent`` the whole units Stripe holds or will."""

    __tablename__ = "stripe_usage_series"

    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    meter_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    measured: Mapped[Decimal] = mapped_column(DecimalText())
    sent: Mapped[int] = mapped_column(BigInteger)


class StripeUsageHour(Base):
    """One hour of a series: its usage as last accounted, the whole units its meter
    events carry at Stripe, and the last revision (identifier) used for it."""

    __tablename__ = "stripe_usage_hours"
    __table_args__ = (Index("ix_stripe_usage_hours_meter", "meter_id", "hour_start"),)

    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    meter_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hour_start: Mapped[datetime] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    measured: Mapped[Decimal] = mapped_column(DecimalText())
    sent: Mapped[int] = mapped_column(BigInteger)
    revision: Mapped[int] = mapped_column(Integer)


class StripeReport(Base):
    """Something sent (or to send) to Stripe, written in the transaction that decided
    it: a meter event (``meter_event``), the cancellation of one (``meter_event_cancel``)
    or an invoice (``invoice``). ``pending`` until Stripe takes it (``sent``) or it is
    given up (``failed``); every attempt is kept."""

    __tablename__ = "stripe_reports"
    __table_args__ = (
        Index("ix_stripe_reports_queue", "workspace_id", "status", "seq"),
        Index("ix_stripe_reports_workspace_id", "workspace_id", "id"),
        Index("ix_stripe_reports_customer_id", "customer_id", "id"),
        Index("ix_stripe_reports_invoice_id", "invoice_id"),
    )

    # The order decisions were made in: a workspace's reports go to Stripe in this order.
    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id"))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    # A meter event: its meter, hour, revision, identifier, event name and whole value.
    meter_id: Mapped[int | None] = mapped_column(BigInteger)
    hour_start: Mapped[datetime | None]
    revision: Mapped[int | None] = mapped_column(Integer)
    identifier: Mapped[str | None] = mapped_column(String(120), unique=True)
    event_name: Mapped[str | None] = mapped_column(String(100))
    value: Mapped[int | None] = mapped_column(BigInteger)
    cancels: Mapped[str | None] = mapped_column(String(40))  # the report it cancels
    cancelled_by: Mapped[str | None] = mapped_column(String(40))
    # An invoice: Meterline's invoice and how far its Stripe twin has come.
    invoice_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("invoices.id"))
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_attempt_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(1000))
    error_report: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    sent_at: Mapped[datetime | None]


class StripeReportAttempt(Base):
    """One try of a report: when, Stripe's status code, how long, what failed."""

    __tablename__ = "stripe_report_attempts"
    __table_args__ = (Index("ix_stripe_report_attempts_report_id", "report_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("stripe_reports.id", ondelete="CASCADE")
    )
    at: Mapped[datetime]
    status_code: Mapped[int | None]
    latency_ms: Mapped[int]
    error: Mapped[str | None] = mapped_column(String(1000))
