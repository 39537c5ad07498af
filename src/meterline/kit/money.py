"""Currencies: ISO 4217 codes and their minor-unit exponents (no I/O)."""

from __future__ import annotations

from functools import cache

from iso4217 import Currency


@cache
def exponent(code: str) -> int | None:
    """The currency's minor-unit exponent (USD 2, JPY 0, KWD 3); None for codes that
    are not ISO 4217 currencies, or carry no minor unit (funds, metals, XXX)."""
    if len(code) != 3 or not code.isupper():
        return None
    try:
        currency = Currency(code)
    except ValueError:
        return None
    found: int | None = currency.exponent
    return found
