"""Plans: the request and response shapes of SPEC §3 and §8."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from meterline.kit.fields import NonNegative, Positive
from meterline.kit.money import exponent
from meterline.meters.schemas import MeterKey, PropertyPath

LimitWindow = Literal["minute", "hour", "day", "month", "period"]
LIMIT_WINDOWS: tuple[LimitWindow, ...] = ("minute", "hour", "day", "month", "period")
Interval = Literal["day", "week", "month", "year"]
PlanKey = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$", examples=["pro"]),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _PriceBase(_Strict):
    minimum: NonNegative | None = Field(None, description="Least amount per period.")
    maximum: NonNegative | None = Field(None, description="Most amount per period.")

    @model_validator(mode="after")
    def _bounds(self) -> _PriceBase:
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise PydanticCustomError("minimum_above_maximum", "minimum is above maximum")
        return self


class PerUnitPrice(_PriceBase):
    model: Literal["per_unit"]
    unit_price: NonNegative


class PackagePrice(_PriceBase):
    model: Literal["package"]
    package_size: Positive
    package_price: NonNegative


class Tier(_Strict):
    up_to: NonNegative | None = Field(description="Upper bound (inclusive); null on the last.")
    unit_price: NonNegative = Decimal(0)
    flat_price: NonNegative = Decimal(0)


class TieredPrice(_PriceBase):
    model: Literal["graduated", "volume"]
    tiers: Annotated[list[Tier], Field(min_length=1, max_length=50)]

    @field_validator("tiers")
    @classmethod
    def _ascending(cls, tiers: list[Tier]) -> list[Tier]:
        bounds = [tier.up_to for tier in tiers]
        if bounds[-1] is not None:
            raise PydanticCustomError("last_tier_bounded", "the last tier's up_to must be null")
        if any(bound is None for bound in bounds[:-1]):
            raise PydanticCustomError("tier_unbounded", "only the last tier may have up_to null")
        finite = [b for b in bounds[:-1] if b is not None]
        if any(b <= a for a, b in pairwise(finite)) or (finite and finite[0] <= 0):
            raise PydanticCustomError(
                "tiers_not_ascending", "tiers' up_to must be positive and strictly ascending"
            )
        return tiers


Price = Annotated[PerUnitPrice | PackagePrice | TieredPrice, Field(discriminator="model")]


class CreditCost(_Strict):
    per_unit: NonNegative
    property: PropertyPath | None = Field(None, description="Property whose value overrides.")
    values: dict[str, NonNegative] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _property_named(self) -> CreditCost:
        if self.values and self.property is None:
            raise PydanticCustomError("property_required", "values need the property they key")
        return self


class Limit(_Strict):
    window: LimitWindow
    max: NonNegative | None = Field(description="null: unlimited.")
    enforcement: Literal["hard", "soft"] = "hard"
    alert_at: Annotated[list[Positive], Field(max_length=10)] = Field(
        default_factory=lambda: [Decimal(1)], description="Shares of max that raise alerts."
    )

    @field_validator("alert_at")
    @classmethod
    def _shares(cls, shares: list[Decimal]) -> list[Decimal]:
        if len(set(shares)) != len(shares):
            raise PydanticCustomError("duplicate_share", "alert_at names a share twice")
        return sorted(shares)


class Feature(_Strict):
    enabled: bool = True
    included: NonNegative = Decimal(0)
    price: Price | None = None
    credit_cost: CreditCost | None = None
    limits: Annotated[list[Limit], Field(max_length=5)] = Field(default_factory=list)

    @field_validator("limits")
    @classmethod
    def _one_per_window(cls, limits: list[Limit]) -> list[Limit]:
        windows = [limit.window for limit in limits]
        if len(set(windows)) != len(windows):
            raise PydanticCustomError("duplicate_window", "one limit per window")
        return limits


class PlanCredits(_Strict):
    amount: NonNegative = Field(description="Granted at the start of each billing period.")
    expires_at_period_end: bool = False
    priority: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        0, description="The grants' priority (lower is spent first)."
    )


class PlanFields(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    description: Annotated[str | None, Field(max_length=2000)] = None
    currency: str = Field(examples=["USD"], description="ISO 4217 code.")
    interval: Interval = "month"
    base_fee: NonNegative = Decimal(0)
    credits: PlanCredits | None = None
    features: Annotated[dict[MeterKey, Feature], Field(max_length=200)] = Field(
        default_factory=dict, description="Meter key → feature entry."
    )

    @field_validator("currency")
    @classmethod
    def _currency(cls, code: str) -> str:
        if exponent(code) is None:
            raise PydanticCustomError(
                "invalid_currency", "{code!r} is not an ISO 4217 currency code", {"code": code}
            )
        return code


class PlanCreate(PlanFields):
    key: PlanKey


class PlanReplace(PlanFields):
    """The whole plan (PUT): fields left out take their defaults."""


class PlanRead(PlanFields):
    model_config = ConfigDict(extra="ignore")

    key: str
    version: int = Field(description="Starts at 1; each PUT adds one.")
    created_at: datetime
    updated_at: datetime


class PlanList(BaseModel):
    data: list[PlanRead]
    next_cursor: str | None
