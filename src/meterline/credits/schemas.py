from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from meterline.customers.schemas import Metadata
from meterline.kit.fields import ClientTime, DecimalOut, NonNegative, Positive

Source = Literal["allocation", "purchase", "promotional", "adjustment"]
Text = Annotated[str, Field(max_length=1000)]


class GrantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Positive
    source: Source = "purchase"
    priority: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        0, description="Lower numbers are spent first."
    )
    expires_at: ClientTime | None = Field(None, description="Must be in the future.")
    description: Text | None = None
    metadata: Metadata = Field(default_factory=dict)


class DebitCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Positive
    description: Text | None = None
    reference: Annotated[str, Field(max_length=255)] | None = Field(
        None, description="Your reference for this debit (an order id, say)."
    )
    metadata: Metadata = Field(default_factory=dict)


class CreditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    low_balance_threshold: NonNegative | None = Field(
        description="Record a `credits.low` alert when the balance falls below this; null: off."
    )


class GrantRead(BaseModel):
    id: str
    amount: DecimalOut
    remaining: DecimalOut
    source: Source
    priority: int
    expires_at: datetime | None
    description: str | None
    metadata: dict[str, Any]
    status: Literal["live", "used", "expired", "voided"]
    created_at: datetime


class CreditsRead(BaseModel):
    customer: str
    billed_to: str = Field(
        description="Whose credits these are (an organization's members use its)."
    )
    balance: DecimalOut
    held: DecimalOut = Field(description="Credits held by live reservations.")
    available: DecimalOut = Field(description="balance - held: what a consume may spend.")
    low_balance_threshold: DecimalOut | None
    grants: list[GrantRead] = Field(description="Live grants, in the order they are spent.")


class Draw(BaseModel):
    grant: str
    amount: DecimalOut


class TransactionRead(BaseModel):
    id: str
    type: Literal["grant", "debit", "expiry", "void", "reversal"] = Field(
        description="`reversal`: a voided event's debit given back to its grants."
    )
    amount: DecimalOut = Field(description="Signed: + for a grant, - for everything else.")
    balance_after: DecimalOut
    at: datetime = Field(description="When it took effect (an expiry: the grant's expires_at).")
    grant: str | None = Field(None, description="The grant made, expired or voided.")
    subject: str | None = Field(None, description="The customer whose usage was charged.")
    reference_type: Literal["event", "reservation", "external", "void"] | None = Field(
        None, description="`void`: the reversal of a voided event's debits (`reference`)."
    )
    reference: str | None = None
    feature: str | None = None
    quantity: DecimalOut | None = Field(None, description="Units of the feature charged.")
    uncovered: DecimalOut | None = Field(
        None, description="Credits the usage cost that the balance could not pay."
    )
    description: str | None = None
    metadata: dict[str, Any] | None = None
    drawn: list[Draw] = Field(default_factory=list, description="Grants it took from.")


class TransactionList(BaseModel):
    data: list[TransactionRead]
    next_cursor: str | None


class GrantResult(BaseModel):
    grant: GrantRead
    transaction: TransactionRead
    balance: DecimalOut
