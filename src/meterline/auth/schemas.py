from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from meterline.auth.scopes import Scope
from meterline.kit.fields import Positive

MIN_PER_SECOND = Decimal("0.0001")  # one request in 10,000 s (about 2¾ hours)
MAX_PER_SECOND = Decimal(1_000_000)
MAX_BURST = 1_000_000


class KeyRateLimit(BaseModel):
    """An API key's own request rate, in place of the server-wide default
    (METERLINE_RATE_LIMIT_PER_SECOND and _BURST). `per_second: null` marks the key
    unlimited, as `max: null` does a plan's limit."""

    model_config = ConfigDict(extra="forbid")

    per_second: Positive | None = Field(
        description="Requests a second on average, 0.0001 to 1,000,000; null: unlimited.",
        examples=["10"],
    )
    burst: Annotated[int | None, Field(ge=1, le=MAX_BURST)] = Field(
        None,
        description="Requests at once before the rate applies (default: per_second rounded "
        "up). Answers always carry it; null only when unlimited.",
    )

    @field_validator("per_second")
    @classmethod
    def _in_range(cls, per_second: Decimal | None) -> Decimal | None:
        if per_second is not None and not MIN_PER_SECOND <= per_second <= MAX_PER_SECOND:
            raise PydanticCustomError(
                "rate_out_of_range", "must be from 0.0001 to 1,000,000 requests a second"
            )
        return per_second

    @model_validator(mode="after")
    def _burst_needs_rate(self) -> KeyRateLimit:
        if self.per_second is None and self.burst is not None:
            raise PydanticCustomError("burst_without_rate", "an unlimited key has no burst")
        return self


RATE_LIMIT = (
    "The key's own request rate; null: the server-wide default applies "
    "(METERLINE_RATE_LIMIT_*, off unless set)."
)


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    scopes: Annotated[list[Scope], Field(min_length=1)]
    rate_limit: KeyRateLimit | None = Field(None, description=RATE_LIMIT)

    @field_validator("scopes")
    @classmethod
    def _unique(cls, scopes: list[Scope]) -> list[Scope]:
        return sorted(set(scopes), key=list(Scope).index)


class ApiKeyRead(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    rate_limit: KeyRateLimit | None = Field(description=RATE_LIMIT)


class ApiKeyUpdate(BaseModel):
    """The fields sent change; the others stay."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    rate_limit: KeyRateLimit | None = Field(None, description=RATE_LIMIT)


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret. Shown in this response only.")


class ApiKeyList(BaseModel):
    data: list[ApiKeyRead]
    next_cursor: str | None


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_seconds: Annotated[int, Field(ge=1, le=86_400)] = Field(
        3600, description="How long the token lives (at most 24 hours)."
    )


class TokenCreated(BaseModel):
    token: str = Field(description="`mlct_…`: send as `Authorization: Bearer <token>`.")
    customer: str
    expires_at: datetime
