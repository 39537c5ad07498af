from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from meterline.kit.fields import ClientTime
from meterline.kit.periods import Anchor

When = Literal["now", "period_end"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscriptionCreate(_Strict):
    customer: Annotated[str, Field(min_length=1, max_length=255)]
    plan: Annotated[str, Field(min_length=1, max_length=100)]
    start_at: ClientTime | None = Field(None, description="Default: now. Past or future.")
    billing_anchor: Anchor = "calendar"


class SubscriptionChange(_Strict):
    plan: Annotated[str, Field(min_length=1, max_length=100)]
    at: When = "now"


class SubscriptionCancel(_Strict):
    at: When = "period_end"


class Period(BaseModel):
    start: datetime
    end: datetime


class PhaseRead(BaseModel):
    plan: str
    start_at: datetime
    end_at: datetime | None


class SubscriptionRead(BaseModel):
    id: str
    customer: str
    plan: str = Field(description="The plan in force now (or first, when scheduled).")
    status: Literal["scheduled", "active", "canceled"]
    billing_anchor: Anchor
    start_at: datetime
    end_at: datetime | None = Field(description="When it ends (set by cancel).")
    canceled_at: datetime | None
    current_period: Period | None
    phases: list[PhaseRead]
    created_at: datetime


class SubscriptionList(BaseModel):
    data: list[SubscriptionRead]
    next_cursor: str | None
