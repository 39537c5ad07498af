from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from meterline.kit.fields import DecimalOut


class AlertRead(BaseModel):
    id: str
    customer: str = Field(description="The billing customer (an organization for members).")
    type: str = Field(examples=["usage.threshold_reached"])
    feature: str | None
    window: str | None
    window_start: datetime | None
    threshold: DecimalOut | None = Field(
        description="A usage alert: the share of the limit (0.8); credits.low: the balance."
    )
    data: dict[str, Any] = Field(description="The numbers that raised it.")
    created_at: datetime


class AlertList(BaseModel):
    data: list[AlertRead]
    next_cursor: str | None
