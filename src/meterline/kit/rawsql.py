"""The fast path for bulk writes: driver-level statements with driver-ready values.

SQLAlchemy's per-row parameter processing costs more than the database itself when a
request carries thousands of rows, so the ingestion hot path converts values once,
here, and hands the driver flat parameters. ``tests/kit/test_rawsql.py`` proves the
values are stored exactly as the ORM would store them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy import exc as exc_
from sqlalchemy.orm import Session

_SQLITE_MAX_PARAMS = 32_000  # SQLite allows 32,766 parameters per statement
_PG_VALUES_ROWS = 50  # up to this many rows, VALUES beats COPY's four round trips


def _sqlite_time(value: datetime) -> str:
    # "YYYY-MM-DD HH:MM:SS.ffffff" in UTC, as the ORM's column type stores it.
    v = value if value.tzinfo is UTC else value.astimezone(UTC)
    return v.isoformat(" ", "microseconds")[:26]


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


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
    parse_timestamp: Callable[[Any], datetime]  # a timestamp column's raw value
    parse_json: Callable[[Any], Any]  # a JSON column's raw value
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

        PostgreSQL: for large batches, ``COPY`` into a session-local staging table, then
        one ``INSERT … SELECT`` (binary-fast, no per-row SQL); small ones (a consume, a
        settlement) and SQLite: multi-row VALUES, one round trip.
        """
        if not rows:
            return []
        names = ", ".join(name for name, _ in columns)
        if self.dialect == "postgresql" and len(rows) > _PG_VALUES_ROWS:
            return _copy_then_insert(session.connection(), table, columns, rows, suffix)
        width = len(columns)
        if self.dialect == "postgresql":
            one = "(" + ", ".join(f"%s::{kind}" for _, kind in columns) + ")"
        else:
            one = "(" + ", ".join([self.mark] * width) + ")"
        head = f"INSERT INTO {table} ({names}) VALUES "
        per_statement = max(1, _SQLITE_MAX_PARAMS // width)
        returned: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = head + ", ".join([one] * len(chunk)) + (" " + suffix if suffix else "")
            params = tuple(value for row in chunk for value in row)
            found = run(session, sql, params)
            if "RETURNING" in suffix:
                returned.extend(tuple(r) for r in found)
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
    _sqlite_parse_time,
    orjson.loads,
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
    _same,
    _same,
    "%s",
    add="({0} + {1})",
    least="LEAST({0}, {1})",
    greatest="GREATEST({0}, {1})",
)


def _dbapi(session: Session) -> Any:
    """The driver's own connection under the session's transaction (sqlite3 or psycopg).
    Statements sent to it skip SQLAlchemy's result machinery, which costs more than a
    small indexed query itself. Kept in ``session.info`` until the transaction ends."""
    state = transaction_state(session)
    found = state.get("dbapi")
    if found is None:
        found = state["dbapi"] = session.connection().connection.driver_connection
    return found


_STATE = "meterline.transaction"


def transaction_state(session: Session) -> dict[str, Any]:
    """Things that live as long as the session's transaction (its driver connection,
    the locks it holds), forgotten when the transaction ends."""
    state: dict[str, Any] = session.info.setdefault(_STATE, {})
    return state


@event.listens_for(Session, "after_transaction_end")
def _forget_transaction_state(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost transaction: connection and locks go
        session.info.pop(_STATE, None)


def run(session: Session, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """One statement with driver-ready ``params``; its rows (none for a write)."""
    with _as_sqlalchemy_errors(session, sql, params):
        cursor = _dbapi(session).execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def run_many(session: Session, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """One statement per row of parameters (``executemany``)."""
    with _as_sqlalchemy_errors(session, sql, rows):
        cursor = _dbapi(session).cursor()
        try:
            cursor.executemany(sql, rows)
        finally:
            cursor.close()


@contextmanager
def _as_sqlalchemy_errors(session: Session, sql: str, params: Any) -> Iterator[None]:
    """Driver errors raised as SQLAlchemy's (OperationalError, IntegrityError, …), as if
    the statement had gone through SQLAlchemy: one set of exceptions for callers."""
    dialect = session.get_bind().dialect
    base: type[Exception] = dialect.loaded_dbapi.Error
    try:
        yield
    except base as exc:
        raise exc_.DBAPIError.instance(sql, params, exc, base, dialect=dialect) from exc


def driver(session: Session) -> Driver:
    return POSTGRESQL if session.get_bind().dialect.name == "postgresql" else SQLITE
