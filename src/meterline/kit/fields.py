"""Field types shared by request and response models (knows no domain)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

from meterline.kit.decimals import NotADecimal, format_decimal, parse_decimal


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


_AS_TEXT = PlainSerializer(format_decimal, return_type=str)
_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}, {"type": "number"}]}
)

# Exact numbers: accepted as decimal strings (exact) or JSON numbers, answered as strings.
# A computed number in a response (a duration meter's hours may have any number of
# places): never validated as input, answered as a decimal string.
DecimalOut = Annotated[Decimal, _AS_TEXT, WithJsonSchema({"type": "string"})]
NonNegative = Annotated[Decimal, BeforeValidator(_non_negative), _AS_TEXT, _SCHEMA]
Positive = Annotated[Decimal, BeforeValidator(_positive), _AS_TEXT, _SCHEMA]

# Money, already rounded to its currency: answered with the currency's places ("50.00").
MoneyOut = Annotated[
    Decimal,
    PlainSerializer(lambda value: format(value, "f"), return_type=str),
    WithJsonSchema({"type": "string", "examples": ["35.48"]}),
]
