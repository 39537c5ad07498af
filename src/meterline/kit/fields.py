"""Field types shared by request and response models (knows no domain)."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

from meterline.kit import payload
from meterline.kit.decimals import NotADecimal, display_decimal, parse_decimal
from meterline.kit.time import TimeOutOfRange, bounded


def _decimal(value: Any) -> Decimal:
    try:
        return parse_decimal(value)
    except NotADecimal as exc:
        raise PydanticCustomError("invalid_decimal", "{reason}", {"reason": str(exc)}) from exc


def _non_negative(value: Any) -> Decimal:
    result = _decimal(value)
    if result < 0:
        raise PydanticCustomError("negative_number", "must be zero or more")
    return result


def _positive(value: Any) -> Decimal:
    result = _decimal(value)
    if result <= 0:
        raise PydanticCustomError("not_positive", "must be more than zero")
    return result


def _quantity(value: Any) -> Decimal:
    result = _decimal(value)
    if result < 0:
        raise PydanticCustomError(
            "invalid_quantity", "must be zero or more: usage is never negative"
        )
    return result


_AS_TEXT = PlainSerializer(display_decimal, return_type=str)
_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}, {"type": "number"}]}
)

# Exact numbers: accepted as decimal strings (exact) or JSON numbers, answered as strings.
# A computed number in a response (a duration meter's hours may have any number of
# places): never validated as input, answered as a decimal string.
DecimalOut = Annotated[Decimal, _AS_TEXT, WithJsonSchema({"type": "string"})]
NonNegative = Annotated[Decimal, BeforeValidator(_non_negative), _AS_TEXT, _SCHEMA]
Positive = Annotated[Decimal, BeforeValidator(_positive), _AS_TEXT, _SCHEMA]
# Usage asked for or reported (check, hold, settle): never negative (`invalid_quantity`).
Quantity = Annotated[Decimal, BeforeValidator(_quantity), _AS_TEXT, _SCHEMA]

# Money, already rounded to its currency: answered with the currency's places ("50.00").
MoneyOut = Annotated[
    Decimal,
    PlainSerializer(lambda value: format(value, "f"), return_type=str),
    WithJsonSchema({"type": "string", "examples": ["35.48"]}),
]


def _rfc3339(value: Any) -> Any:
    """Only RFC 3339 text is a time (Pydantic alone would take 0 as 1970-01-01)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise PydanticCustomError(
            "invalid_timestamp", "expected an RFC 3339 time such as 2026-11-03T10:00:00Z"
        )
    return value


def _client_time(value: datetime) -> datetime:
    try:
        return bounded(value)
    except TimeOutOfRange as exc:
        raise PydanticCustomError(exc.code, str(exc)) from exc


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", re.ASCII)


# A time from a client (body field or query parameter): RFC 3339 with an offset, in
# years 1970-9000, answered 422 otherwise (never an overflow), handed on in UTC.
ClientTime = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    AfterValidator(_client_time),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


MAX_PROPERTIES_BYTES = 16 * 1024


def _properties(value: dict[str, Any]) -> dict[str, Any]:
    found = payload.problem(value)
    if found is not None:
        where, code, message = found
        raise PydanticCustomError(code, "{where}: {message}", {"where": where, "message": message})
    if len(orjson.dumps(value)) > MAX_PROPERTIES_BYTES:
        raise PydanticCustomError("invalid_properties", "properties are limited to 16 KiB of JSON")
    return value


# An event's properties as a request carries them (a check, hold or settlement): the
# limit events have, so what a consume would record is refused alike before.
Properties = Annotated[dict[str, Any], AfterValidator(_properties)]
