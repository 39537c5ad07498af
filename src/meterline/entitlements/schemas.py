from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from meterline.customers.schemas import ExternalId
from meterline.kit.fields import DecimalOut, Properties, Quantity
from meterline.meters.schemas import MeterKey
from meterline.plans.schemas import LimitWindow
from meterline.subscriptions.schemas import Period

Reason = Literal[
    "ok",
    "limit_exceeded",
    "insufficient_credits",
    "feature_disabled",
    "feature_not_in_plan",
    "unknown_customer",
]
Text = Annotated[str, Field(min_length=1, max_length=255)]


class _Usage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: ExternalId
    feature: MeterKey = Field(description="A meter key in the customer's plan.")
    quantity: Quantity = Field(Decimal(1), description="Units asked for (a decimal, ≥ 0).")
    subject: Text | None = None
    properties: Properties = Field(default_factory=dict)


class CheckRequest(_Usage):
    consume: bool = Field(False, description="Record the usage when allowed, atomically.")
    id: Text | None = Field(None, description="Event id when consuming (idempotency key).")


class ReservationCreate(_Usage):
    ttl_seconds: Annotated[int, Field(ge=1, le=86_400)] = 300


class ReservationSettle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: Quantity = Field(description="The usage that really happened (0: none).")
    properties: Properties = Field(
        default_factory=dict, description="Added to the hold's properties for the event."
    )


class LimitRead(BaseModel):
    window: LimitWindow
    enforcement: Literal["hard", "soft"]
    max: DecimalOut | None = Field(description="null: unlimited.")
    used: DecimalOut
    held: DecimalOut = Field(description="Held by live reservations.")
    remaining: DecimalOut | None = Field(
        description="max - used - held, never below 0; null: unlimited."
    )
    exceeded: bool = Field(description="Nothing remains (hard: the next unit is denied).")
    window_start: datetime
    resets_at: datetime


class CreditsRead(BaseModel):
    balance: DecimalOut = Field(description="The customer's (or its organization's) balance.")
    required: DecimalOut = Field(description="What the usage asked for costs in credits.")


class CheckResponse(BaseModel):
    allowed: bool
    reason: Reason
    feature: str
    customer: str
    event_id: str | None = Field(None, description="The recorded event (consume).")
    duplicate: bool = Field(False, description="The event id was already recorded.")
    limits: list[LimitRead]
    credits: CreditsRead | None = Field(
        None, description="Credits (null when the customer or feature is unknown)."
    )


class ReservationRead(BaseModel):
    id: str | None
    allowed: bool
    reason: Reason
    customer: str
    feature: str
    quantity: DecimalOut
    status: Literal["held", "settled", "released", "expired"] | None
    expires_at: datetime | None
    settled_quantity: DecimalOut | None = None
    event_id: str | None = None
    limits: list[LimitRead] = Field(default_factory=list)
    credits: CreditsRead | None = Field(None, description="Credits held (hold) and balance.")


class FeatureEntitlement(BaseModel):
    feature: str
    enabled: bool
    unit: str | None
    included: DecimalOut
    limits: list[LimitRead]
    exceeded: bool = Field(description="A hard limit has nothing left.")


class EntitlementsRead(BaseModel):
    customer: str
    billed_to: str
    plan: str | None
    subscription: str | None
    period: Period | None
    features: list[FeatureEntitlement]


class LimitReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feature: Text | None = Field(None, description="Default: every feature with that window.")
    window: LimitWindow
