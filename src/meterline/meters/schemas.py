from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from meterline.meters.aggregation import DURATION_UNITS, Aggregation

MeterKey = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$",
        examples=["ocr_scan"],
        description="Letters, digits, `_`, `.`, `-`; up to 100 characters.",
    ),
]
StripeEventName = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=100,
        description="The `event_name` of the Stripe meter this meter's usage is reported to "
        "(Stripe sync, meter_events mode). Only count, sum and duration meters add up hour "
        "by hour, so only they can be mapped.",
        examples=["ocr_scans"],
    ),
]
ADDITIVE = ("count", "sum", "duration")
PropertyPath = Annotated[str, Field(pattern=r"^[^.\s][^\s]{0,254}$", examples=["usage.tokens"])]
Scalar = str | int | float | bool
FilterValue = Scalar | list[Scalar]


MAX_FILTER_BYTES = 4096


def _check_filter(value: dict[str, Any]) -> dict[str, Any]:
    if len(orjson.dumps(value)) > MAX_FILTER_BYTES:
        raise PydanticCustomError("invalid_filter", "a filter is limited to 4 KiB of JSON")
    for path, wanted in value.items():
        if not path or path.startswith(".") or any(c.isspace() for c in path):
            raise PydanticCustomError("invalid_filter", "filter keys are property paths")
        if isinstance(wanted, list) and not wanted:
            raise PydanticCustomError("invalid_filter", "a filter's list of values is empty")
    return value


class _MeterFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("filter", check_fields=False)
    @classmethod
    def _filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_filter(value)

    @field_validator("group_by", check_fields=False)
    @classmethod
    def _group_by(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise PydanticCustomError("invalid_group_by", "group_by names a property twice")
        return value


class MeterCreate(_MeterFields):
    key: MeterKey
    name: Annotated[str | None, Field(max_length=255)] = None
    event_type: Annotated[str, Field(min_length=1, max_length=255)]
    aggregation: Aggregation
    value_property: PropertyPath | None = Field(
        None, description="Dotted path into `properties`; default: the event's `quantity`."
    )
    filter: dict[str, FilterValue] = Field(
        default_factory=dict, description="Property path → value, or list of values."
    )
    group_by: Annotated[list[PropertyPath], Field(max_length=10)] = Field(default_factory=list)
    unit: Annotated[str | None, Field(max_length=50)] = None
    stripe_event_name: StripeEventName = None

    @model_validator(mode="after")
    def _consistent(self) -> MeterCreate:
        check_consistency(self.aggregation, self.value_property, self.unit)
        check_stripe_mapping(self.aggregation, self.stripe_event_name)
        return self


def check_stripe_mapping(aggregation: str, stripe_event_name: str | None) -> None:
    if stripe_event_name is not None and aggregation not in ADDITIVE:
        raise PydanticCustomError(
            "meter_not_additive",
            "only count, sum and duration meters can be reported to a Stripe meter "
            "(their hours add up)",
        )


def check_consistency(aggregation: str, value_property: str | None, unit: str | None) -> None:
    if aggregation == "unique_count" and not value_property:
        raise PydanticCustomError(
            "value_property_required", "unique_count counts distinct values of value_property"
        )
    if aggregation == "count" and value_property:
        raise PydanticCustomError(
            "value_property_not_allowed", "count counts events; it takes no value_property"
        )
    if aggregation == "duration" and (unit or "second") not in DURATION_UNITS:
        raise PydanticCustomError(
            "invalid_unit", "a duration meter's unit is one of second, minute, hour, day"
        )


class MeterUpdate(_MeterFields):
    """Only the fields sent change. Fields that change past numbers (event_type,
    aggregation, value_property, filter, and a duration meter's unit) are refused with
    409 once the meter has events; group_by may change at any time (rollups rebuild)."""

    name: Annotated[str | None, Field(min_length=1, max_length=255)] = None
    event_type: Annotated[str | None, Field(min_length=1, max_length=255)] = None
    aggregation: Aggregation | None = None
    value_property: PropertyPath | None = None
    filter: dict[str, FilterValue] | None = None
    group_by: Annotated[list[PropertyPath] | None, Field(max_length=10)] = None
    unit: Annotated[str | None, Field(max_length=50)] = None
    stripe_event_name: StripeEventName = None


class MeterRead(BaseModel):
    key: str
    name: str
    event_type: str
    aggregation: Aggregation
    value_property: str | None
    filter: dict[str, Any]
    group_by: list[str]
    unit: str | None
    stripe_event_name: str | None
    created_at: datetime
    updated_at: datetime


class MeterList(BaseModel):
    data: list[MeterRead]
    next_cursor: str | None


class UsageRow(BaseModel):
    window_start: datetime
    window_end: datetime
    customer: str | None
    group: dict[str, Any]
    value: str = Field(description="A decimal string.")


class UsageResponse(BaseModel):
    meter: str
    aggregation: Aggregation
    unit: str | None
    data: list[UsageRow]
