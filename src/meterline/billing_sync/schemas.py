"""Stripe sync over HTTP (SPEC §9): the integration, its reports, reconciliation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from meterline.kit.fields import ClientTime, DecimalOut
from meterline.webhooks.schemas import AttemptRead  # the same log as webhook deliveries

Mode = Literal["meter_events", "invoices"]
ReportStatus = Literal["pending", "sent", "failed"]


class IntegrationPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret_key: Annotated[
        str,
        Field(
            pattern=r"^(sk|rk)_(test|live)_[A-Za-z0-9]{8,240}$",
            description="A Stripe secret (`sk_…`) or restricted (`rk_…`) key; never answered "
            "back (only its last 4 characters).",
        ),
    ]
    mode: Mode = Field(
        description="`meter_events`: Stripe prices the usage (sent to Stripe meters). "
        "`invoices`: Meterline prices it (each finalized invoice becomes a Stripe invoice)."
    )
    webhook_secret: Annotated[
        str | None,
        Field(
            pattern=r"^whsec_[A-Za-z0-9+/=_-]{8,240}$",
            description="The `whsec_` signing secret of the Stripe webhook endpoint that "
            "calls POST /v1/integrations/stripe/webhook.",
        ),
    ] = None
    report_delay_minutes: Annotated[int, Field(ge=0, le=1440)] = Field(
        60, description="How long after an hour ends its usage is sent (for late events)."
    )


class Unmapped(BaseModel):
    customers: int = Field(description="Billed customers without a `stripe_customer_id`.")
    customer_examples: list[str] = Field(description="Up to 20 of them (external ids).")
    meters: list[str] = Field(
        description="Count, sum and duration meters without a `stripe_event_name`."
    )


class IntegrationRead(BaseModel):
    status: Literal["connected", "not_connected"]
    mode: Mode | None
    secret_key_last4: str | None
    webhook_secret_set: bool
    report_delay_minutes: int | None
    connected_at: datetime | None
    last_reported_at: datetime | None = Field(description="When Stripe last took a report.")
    aggregated_through: datetime | None = Field(
        description="The end of the last closed hour whose usage has been accounted for."
    )
    pending: int = Field(description="Reports waiting to reach Stripe.")
    failed: int = Field(description="Reports given up (retried every few hours, or by hand).")
    lag_seconds: int | None = Field(
        description="How far behind Stripe is: seconds from the end of the newest hour "
        "whose usage Stripe has in full (meter_events), or since the oldest invoice still "
        "waiting (invoices), to now."
    )
    excess: int = Field(
        description="Whole units Stripe holds beyond Meterline's usage (decreases that "
        "came too late to cancel); absorbed by later usage."
    )
    last_error: str | None
    last_error_at: datetime | None
    unmapped: Unmapped


class ReportRead(BaseModel):
    id: str
    kind: Literal["meter_event", "meter_event_cancel", "invoice"]
    status: ReportStatus
    customer: str
    stripe_customer_id: str | None
    meter: str | None = Field(description="The meter's key (meter events).")
    event_name: str | None
    hour_start: datetime | None
    revision: int | None
    identifier: str | None = Field(
        description="The meter event's identifier (invoices: the prefix of the idempotency "
        "keys of each step)."
    )
    value: int | None = Field(description="Whole units (a cancellation: those it takes back).")
    cancels: str | None
    cancelled_by: str | None
    invoice: str | None
    stripe_invoice_id: str | None
    attempts: list[AttemptRead]
    next_attempt_at: datetime | None
    last_error: str | None
    error_report: str | None = Field(
        description="What Stripe's v1.billing.meter.error_report_triggered said about it."
    )
    created_at: datetime
    sent_at: datetime | None


class ReportList(BaseModel):
    data: list[ReportRead]
    next_cursor: str | None


class SyncQueued(BaseModel):
    queued: bool = True
    mode: Mode


class ReconcileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_: ClientTime = Field(alias="from", description="Whole hour, with offset.")
    to: ClientTime = Field(description="Whole hour, with offset; not after now.")
    repair: bool = Field(False, description="Send the missing deltas.")


class HourDifference(BaseModel):
    hour_start: datetime
    stripe: int
    reported: int


class Difference(BaseModel):
    customer: str
    stripe_customer_id: str
    meter: str
    event_name: str
    meterline: DecimalOut = Field(description="Meterline's usage in the range (exact).")
    reported: int = Field(description="Whole units Stripe took from Meterline for the range.")
    pending: int = Field(description="Whole units decided but not yet at Stripe.")
    stripe: int = Field(description="Stripe's meter event summaries for the range.")
    difference: int = Field(description="stripe - reported.")
    hours: list[HourDifference]
    problem: str | None = Field(None, description="Why it could not be compared.")


class ReconcileResult(BaseModel):
    start: datetime
    end: datetime
    checked: int = Field(description="Customer and meter pairs compared.")
    differences: list[Difference]
    repaired: bool
    queued: int = Field(description="Reports written to close the differences.")


class WebhookReceived(BaseModel):
    received: bool = True
    type: str
    handled: bool
