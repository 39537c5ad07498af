from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal[
    "usage.threshold_reached",
    "usage.limit_reached",
    "credits.granted",
    "credits.low",
    "credits.depleted",
    "invoice.created",
    "invoice.finalized",
    "subscription.created",
    "subscription.changed",
    "subscription.canceled",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointCreate(_Strict):
    url: Annotated[
        str, Field(min_length=8, max_length=2000, examples=["https://example.com/hooks"])
    ]
    events: list[EventType] = Field(
        default_factory=list, description="Event types to send; empty: every type."
    )
    description: Annotated[str | None, Field(max_length=500)] = None


class EndpointUpdate(_Strict):
    url: Annotated[str | None, Field(min_length=8, max_length=2000)] = None
    events: list[EventType] | None = None
    description: Annotated[str | None, Field(max_length=500)] = None
    enabled: bool | None = Field(None, description="true re-enables a disabled endpoint.")


class EndpointRead(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(description="Why Meterline disabled it, if it did.")
    failing_since: datetime | None = Field(description="First failure since the last success.")
    created_at: datetime
    secret: str | None = Field(
        None, description="The `whsec_` signing secret: in the create and rotate answers only."
    )


class EndpointList(BaseModel):
    data: list[EndpointRead]
    next_cursor: str | None


class AttemptRead(BaseModel):
    at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


class DeliveryRead(BaseModel):
    id: str
    endpoint: str
    message_id: str = Field(description="The `webhook-id` header (the same on every retry).")
    type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: list[AttemptRead]
    next_attempt_at: datetime | None
    created_at: datetime


class DeliveryList(BaseModel):
    data: list[DeliveryRead]
    next_cursor: str | None
