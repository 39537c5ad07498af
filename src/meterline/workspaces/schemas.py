from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class WorkspaceRead(BaseModel):
    id: int
    name: str
    created_at: datetime
    auto_create_customers: bool = Field(
        description="Customers named by events but unknown are created on first sight."
    )
    event_lateness_days: int = Field(description="Events older than this are refused (too_late).")
    default_plan: str | None = Field(
        None, description="Plan of customers without a subscription (calendar periods)."
    )
    invoice_grace_days: int = Field(
        description="A closed period's invoice stays a draft this long, absorbing late "
        "events, then finalizes (0: finalized when the period closes)."
    )
    event_retention_days: int | None = Field(
        description="Raw events older than this are deleted in the background; usage "
        "totals (rollups), invoices and the ledger stay. null: kept forever."
    )


class WorkspaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, Field(min_length=1, max_length=100)] = None
    auto_create_customers: bool | None = None
    event_lateness_days: Annotated[int | None, Field(ge=0, le=3650)] = None
    default_plan: Annotated[str | None, Field(min_length=1, max_length=100)] = Field(
        None, description="A plan key; null removes the default."
    )
    invoice_grace_days: Annotated[int | None, Field(ge=0, le=90)] = None
    event_retention_days: Annotated[int | None, Field(ge=1, le=36500)] = Field(
        None, description="At least event_lateness_days; null keeps raw events forever."
    )
