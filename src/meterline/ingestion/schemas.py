from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventIn(BaseModel):
    """One usage event (documentation of the body; events are validated one by one)."""

    id: str | None = Field(None, description="Idempotency key, unique per workspace.")
    type: str
    customer: str = Field(description="The customer's external_id.")
    subject: str | None = None
    timestamp: datetime | None = Field(None, description="RFC 3339 with offset; default now.")
    quantity: str | float | None = Field(None, description="Default 1; a decimal string is exact.")
    properties: dict[str, Any] | None = None


class EventBatchIn(BaseModel):
    events: list[EventIn] = Field(max_length=10_000)


class IngestError(BaseModel):
    index: int
    code: str
    message: str


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    errors: list[IngestError] = Field(description="Each refused event: index, code, reason.")
    unmetered: int = Field(description="Accepted events that no meter counts (yet).")
    warnings: list[IngestError] = Field(
        description="Accepted events some meter of their type does not count, and why "
        "(`unmetered`, `filtered_out`, `missing_value`, `invalid_value`); the first 100."
    )


class MeterProblem(BaseModel):
    meter: str | None = Field(description="The meter; null when no meter has the event's type.")
    code: str
    message: str


class EventRead(BaseModel):
    id: str
    type: str
    customer: str = Field(description="The customer the event named.")
    billed_to: str = Field(description="The customer it is attributed to (its organization).")
    subject: str | None
    timestamp: datetime
    received_at: datetime
    quantity: str
    properties: dict[str, Any]
    problems: list[MeterProblem] = Field(
        description="Why a meter of this event type got no value from it (e.g. missing_value)."
    )
    voided_at: datetime | None = Field(
        None, description="Set once voided: the event counts nowhere since."
    )
    void_reason: str | None = None


class EventVoid(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=500, description="Kept with the event.")


class EventList(BaseModel):
    data: list[EventRead]
    next_cursor: str | None
