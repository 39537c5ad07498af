"""What a customer's usage costs: the shapes of ``/customers/{id}/usage`` (SPEC §8)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from meterline.kit.fields import DecimalOut, MoneyOut
from meterline.plans.schemas import LimitWindow
from meterline.subscriptions.schemas import Period


class FeatureUsage(BaseModel):
    feature: str
    unit: str | None
    used: DecimalOut
    included: DecimalOut
    billable: DecimalOut = Field(description="max(0, used - included).")
    amount: MoneyOut = Field(description="Rounded to the currency's minor unit.")


class BaseFee(BaseModel):
    plan: str
    description: str
    start: datetime
    end: datetime
    days: int = Field(description="Days of the period on this plan.")
    period_days: int = Field(description="Days of the whole period (the proration base).")
    amount: MoneyOut


class CreditBalance(BaseModel):
    balance: DecimalOut


class InvoiceRef(BaseModel):
    id: str
    number: str | None
    status: str
    total: MoneyOut


class UsageRead(BaseModel):
    customer: str
    billed_to: str = Field(description="Whose usage and bill this is (an organization's).")
    plan: str
    currency: str
    period: Period
    features: list[FeatureUsage] = Field(description="Every feature of the plan.")
    base_fee: MoneyOut = Field(description="The sum of `base_fees` (prorated).")
    base_fees: list[BaseFee]
    total: MoneyOut = Field(description="Base fees plus every feature's amount.")
    credits: CreditBalance


class PastUsage(UsageRead):
    invoice: InvoiceRef | None = Field(description="The period's invoice, once it is made.")


class UsageHistory(BaseModel):
    data: list[PastUsage] = Field(description="Newest period first.")


class LimitForecast(BaseModel):
    window: LimitWindow
    enforcement: Literal["hard", "soft"]
    max: DecimalOut
    used: DecimalOut
    resets_at: datetime
    exceeded: bool = Field(description="The limit is already reached.")
    reached_at: datetime | None = Field(
        description="When the limit is reached at the window's rate so far (null: not "
        "before the window resets, or already reached)."
    )


class FeatureForecast(BaseModel):
    feature: str
    unit: str | None
    used: DecimalOut
    projected: DecimalOut = Field(description="Usage at the end of the period.")
    included: DecimalOut
    billable: DecimalOut
    amount: MoneyOut = Field(description="What the projected usage costs.")
    limits: list[LimitForecast]


class ForecastRead(BaseModel):
    customer: str
    billed_to: str
    plan: str
    currency: str
    period: Period
    as_of: datetime
    method: str
    features: list[FeatureForecast]
    base_fee: MoneyOut
    total: MoneyOut = Field(description="Projected total at the end of the period.")
