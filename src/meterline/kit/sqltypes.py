"""Column types and SQL functions that keep decimals exact on both databases.

PostgreSQL stores ``NUMERIC`` and adds in SQL. SQLite has no decimal type (its
NUMERIC is a float), so decimals are stored as canonical text and combined by small
Python functions registered on every connection (``dec_add``, ``dec_min``,
``dec_max``, and the aggregate ``dec_sum``); ``kit.rawsql.Driver`` spells each for
its database.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

from sqlalchemy import Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

from meterline.kit.decimals import CONTEXT, canonical


class DecimalText(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC on PostgreSQL, canonical text on SQLite."""

    impl = String(80)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String(80))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value if dialect.name == "postgresql" else canonical(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(value)


def _sqlite_add(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    return canonical(CONTEXT.add(Decimal(a), Decimal(b)))


def _sqlite_min(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    return a if Decimal(a) <= Decimal(b) else b


def _sqlite_max(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    return a if Decimal(a) >= Decimal(b) else b


class _SqliteSum:
    """``dec_sum(x)``: the exact sum of decimal texts (SQLite's SUM would use floats)."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: str | None) -> None:
        if value is not None:
            number = Decimal(value)
            self.total = number if self.total is None else CONTEXT.add(self.total, number)

    def finalize(self) -> str | None:
        return None if self.total is None else canonical(self.total)


def register_sqlite_functions(connection: sqlite3.Connection) -> None:
    connection.create_aggregate("dec_sum", 1, _SqliteSum)  # type: ignore[arg-type]  # typeshed: ints only
    connection.create_function("dec_add", 2, _sqlite_add, deterministic=True)
    connection.create_function("dec_min", 2, _sqlite_min, deterministic=True)
    connection.create_function("dec_max", 2, _sqlite_max, deterministic=True)
