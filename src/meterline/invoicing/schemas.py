"""Invoices (SPEC §8): the shapes of ``/invoices`` and ``/customers/{id}/invoices/upcoming``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from meterline.kit.fields import DecimalOut, MoneyOut
from meterline.subscriptions.schemas import Period

InvoiceStatus = Literal["draft", "finalized", "void"]


class InvoiceLine(BaseModel):
    type: Literal["base_fee", "usage"]
    description: str
    plan: str | None = None
    feature: str | None = Field(None, description="A usage line's meter key.")
    unit: str | None = None
    quantity: DecimalOut = Field(description="Billable units (a base fee: 1).")
    used: DecimalOut | None = Field(None, description="A usage line: what was measured.")
    included: DecimalOut | None = Field(None, description="A usage line: units free.")
    start: datetime | None = Field(None, description="A base fee: the part of the period.")
    end: datetime | None = None
    days: int | None = Field(None, description="A base fee: days charged.")
    period_days: int | None = Field(None, description="A base fee: days of the whole period.")
    amount: MoneyOut = Field(description="Rounded half-up to the currency's minor unit.")


class LateUsage(BaseModel):
    feature: str
    invoiced: DecimalOut = Field(description="What the invoice billed as used.")
    used: DecimalOut = Field(description="What the meter counts now for the period.")
    amount_invoiced: MoneyOut
    amount_now: MoneyOut = Field(description="What the period's usage would cost now.")


class InvoiceRead(BaseModel):
    id: str | None = Field(description="null for the upcoming invoice.")
    number: str | None = Field(description="Given at finalization: INV-000001, no gaps.")
    status: InvoiceStatus | Literal["upcoming"]
    customer: str
    subscription: str | None
    plan: str
    currency: str
    period: Period
    lines: list[InvoiceLine]
    total: MoneyOut = Field(description="The sum of the rounded lines.")
    created_at: datetime | None
    finalize_at: datetime | None = Field(
        None, description="A draft: when it finalizes (period end plus the grace period)."
    )
    finalized_at: datetime | None = None
    voided_at: datetime | None = None
    stripe_invoice_id: str | None = Field(
        None, description="Its Stripe invoice (Stripe sync, invoices mode), once made."
    )
    stripe_status: str | None = Field(None, description="The Stripe invoice's status.")
    payment_status: Literal["unpaid", "paid", "failed"] | None = Field(
        None,
        description="From Stripe's webhooks (invoice.paid, invoice.payment_failed); null "
        "while the invoice is not in Stripe.",
    )
    late_usage: list[LateUsage] | None = Field(
        None,
        description="One invoice read by id: usage counted for the period after the invoice "
        "was finalized (never billed by it).",
    )


class InvoiceList(BaseModel):
    data: list[InvoiceRead]
    next_cursor: str | None
