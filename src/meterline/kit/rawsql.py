"""The fast path for bulk writes: driver-level statements with driver-ready values.

SQLAlchemy's per-row parameter processing costs more than the database itself when a
request carries thousands of rows, so the ingestion hot path converts values once,
here, and hands the driver flat parameters. ``tests/kit/test_rawsql.py`` proves the
values are stored exactly as the ORM would store them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.orm import Session

_SQLITE_MAX_PARAMS = 32_000  # SQLite allows 32,766 parameters per statement


def _sqlite_time(value: datetime) -> str:
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d} "
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
    )


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _same(value: Any) -> Any:
    return value


def _sqlite_decimal(value: Decimal | None) -> str | None:
    # Any exact spelling will do for storage ("1E+3" reads back as 1000): str() is fast.
    return None if value is None else str(value)


@dataclass(frozen=True)
class Driver:
    """Value converters and SQL spelling for one database."""

    dialect: str
    timestamp: Callable[[datetime], Any]
    decimal: Callable[[Decimal | None], Any]
    json: Callable[[Any], Any]
    mark: str
    add: str  # SQL adding decimals {0} and {1}
    least: str
    greatest: str

    def insert_many(
        self,
        session: Session,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
        suffix: str = "",
    ) -> list[tuple[Any, ...]]:
        """Insert ``rows`` (``columns`` are (name, PostgreSQL type) pairs) followed by
        ``suffix`` (ON CONFLICT …, RETURNING …); returns the rows RETURNING gives.

        PostgreSQL: ``COPY`` into a session-local staging table, then one
        ``INSERT … SELECT`` (binary-fast, no per-row SQL); SQLite: multi-row VALUES.
        """
        if not rows:
            return []
        connection = session.connection()
        names = ", ".join(name for name, _ in columns)
        if self.dialect == "postgresql":
            return _copy_then_insert(connection, table, columns, rows, suffix)
        width = len(columns)
        one = "(" + ", ".join([self.mark] * width) + ")"
        head = f"INSERT INTO {table} ({names}) VALUES "
        per_statement = max(1, _SQLITE_MAX_PARAMS // width)
        returned: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = head + ", ".join([one] * len(chunk)) + (" " + suffix if suffix else "")
            params = tuple(value for row in chunk for value in row)
            result = connection.exec_driver_sql(sql, params)
            if "RETURNING" in suffix:
                returned.extend(tuple(r) for r in result.fetchall())
        return returned


def _copy_then_insert(
    connection: Any,
    table: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]],
    suffix: str,
) -> list[tuple[Any, ...]]:
    names = ", ".join(name for name, _ in columns)
    staging = f"meterline_staging_{table}"
    raw = connection.connection.driver_connection  # the session's own psycopg connection
    with raw.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
            f"({', '.join(f'{name} {kind}' for name, kind in columns)}) ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} {suffix}")
        returned = [tuple(r) for r in cursor.fetchall()] if "RETURNING" in suffix else []
        cursor.execute(f"TRUNCATE {staging}")
    return returned


SQLITE = Driver(
    "sqlite",
    _sqlite_time,
    _sqlite_decimal,
    _json_text,
    "?",
    add="dec_add({0}, {1})",
    least="dec_min({0}, {1})",
    greatest="dec_max({0}, {1})",
)
POSTGRESQL = Driver(
    "postgresql",
    _same,
    _same,
    _json_text,
    "%s",
    add="({0} + {1})",
    least="LEAST({0}, {1})",
    greatest="GREATEST({0}, {1})",
)


def driver(session: Session) -> Driver:
    return POSTGRESQL if session.get_bind().dialect.name == "postgresql" else SQLITE
