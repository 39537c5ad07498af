from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from meterline.auth.scopes import Scope


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    scopes: Annotated[list[Scope], Field(min_length=1)]

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
