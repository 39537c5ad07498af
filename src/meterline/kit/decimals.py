"""Exact decimal arithmetic for quantities and money: parsing, formatting, merging.

All arithmetic on stored numbers goes through one context with 60 significant digits,
so sums of many 18-digit quantities stay exact (Python's default is 28).
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

CONTEXT = decimal.Context(
    prec=60,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero],
)
MAX_ABS = Decimal("1e18")
MAX_PLACES = 12  # SPEC §2: unit prices keep up to 12 places; quantities likewise
# A number as text, as JSON writes one (ASCII digits, no "_" or other Unicode digits, which
# Python's Decimal would take): 12, -0.5, 1e3, .5, 5.
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$", re.ASCII)
ZERO = Decimal(0)
ONE = Decimal(1)


class NotADecimal(ValueError):
    """The value is not a finite decimal within Meterline's range."""


def parse_decimal(value: object) -> Decimal:
    """A JSON number or numeric string as an exact ``Decimal``.

    Accepts ints, floats (by their shortest repr: 0.1 is 0.1) and strings such as
    ``"1.25"`` or ``"1e3"``; refuses booleans, NaN, infinities, magnitudes of 10^18 and
    over, and more than 12 decimal places (trailing zeros do not count: ``"1.50000"``
    is 1.5).
    """
    if isinstance(value, bool):
        raise NotADecimal("a boolean is not a number")
    if isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        if not _NUMBER.match(value):
            raise NotADecimal(f"{value[:40]!r} is not a number (digits, '.', an exponent)")
        result = Decimal(value)
    elif isinstance(value, Decimal):
        result = value
    else:
        raise NotADecimal(f"a {type(value).__name__} is not a number")
    if not result.is_finite():
        raise NotADecimal("the number must be finite")
    if abs(result) >= MAX_ABS:
        raise NotADecimal("the number must be below 10^18 in magnitude")
    exponent = result.normalize(CONTEXT).as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_PLACES:
        raise NotADecimal(f"at most {MAX_PLACES} decimal places")
    return result


def format_decimal(value: Decimal) -> str:
    """Plain notation without exponent or trailing zeros: 1E+3 → "1000", 2.50 → "2.5"."""
    if value == 0:
        return "0"
    text = format(value.normalize(CONTEXT), "f")
    return text


_DISPLAY = Decimal(1).scaleb(-MAX_PLACES)


def display_decimal(value: Decimal) -> str:
    """A quantity as answered: at most 12 decimal places (a computed one — hours of a
    duration meter, an average — rounded half-even there), no exponent, no trailing
    zeros. Stored and summed values keep every digit; only the answer is rounded."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_PLACES:
        value = value.quantize(_DISPLAY, context=CONTEXT)
    return format_decimal(value)


def add(a: Decimal, b: Decimal) -> Decimal:
    return CONTEXT.add(a, b)


def divide(a: Decimal, b: Decimal) -> Decimal:
    return CONTEXT.divide(a, b)


def canonical(value: Decimal) -> str:
    """The one text form of a value, for hashing and storage: equal numbers, equal text."""
    return format_decimal(value)
