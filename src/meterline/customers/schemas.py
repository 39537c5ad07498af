from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from meterline.kit.time import is_valid_timezone

MAX_METADATA_BYTES = 16 * 1024
# No white space, control characters, or URL delimiters: the id is part of URLs.
EXTERNAL_ID_PATTERN = r"^[^\s/?#%\\\x00-\x1f\x7f]{1,255}$"
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _timezone(value: str) -> str:
    if not is_valid_timezone(value):
        raise PydanticCustomError(
            "invalid_timezone",
            "{value} is not an IANA time zone (for example Europe/Berlin or UTC)",
            {"value": value},
        )
    return value


def _email(value: str | None) -> str | None:
    if value is not None and not _EMAIL_RE.match(value):
        raise PydanticCustomError("invalid_email", "not an e-mail address")
    return value


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(orjson.dumps(value)) > MAX_METADATA_BYTES:
        raise PydanticCustomError("metadata_too_large", "metadata is limited to 16 KiB of JSON")
    return value


ExternalId = Annotated[
    str,
    Field(
        pattern=EXTERNAL_ID_PATTERN,
        description="Your own id for the customer: 1-255 characters, no white space or / ? # % \\.",
        examples=["org_123"],
    ),
]
Timezone = Annotated[str, AfterValidator(_timezone), Field(examples=["Europe/Berlin"])]
Email = Annotated[str | None, Field(max_length=320), AfterValidator(_email)]
Metadata = Annotated[dict[str, Any], AfterValidator(_metadata)]
Name = Annotated[str | None, Field(max_length=255)]
StripeCustomerId = Annotated[
    str | None,
    Field(
        pattern=r"^cus_[A-Za-z0-9]{1,250}$",
        description="The Stripe customer (`cus_…`) this customer's usage and invoices go "
        "to (Stripe sync). Members of an organization are reported through it.",
        examples=["cus_NffrFeUfNV2Hib"],
    ),
]


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId
    name: Name = None
    email: Email = None
    parent: ExternalId | None = Field(
        None, description="external_id of the organization this customer is a member of."
    )
    timezone: Timezone = "UTC"
    metadata: Metadata = Field(default_factory=dict)
    stripe_customer_id: StripeCustomerId = None


class CustomerUpdate(BaseModel):
    """Only the fields sent change; ``parent: null`` detaches from the organization;
    ``metadata`` replaces the whole object."""

    model_config = ConfigDict(extra="forbid")

    name: Name = None
    email: Email = None
    parent: ExternalId | None = None
    timezone: Timezone | None = None
    metadata: Metadata | None = None
    stripe_customer_id: StripeCustomerId = None


class CustomerRead(BaseModel):
    external_id: str
    name: str | None
    email: str | None
    parent: str | None
    timezone: str
    metadata: dict[str, Any]
    stripe_customer_id: str | None
    created_at: datetime
    updated_at: datetime


class CustomerList(BaseModel):
    data: list[CustomerRead]
    next_cursor: str | None
