"""Engines, sessions and the unit of work: the one place that commits.

One schema, two engines. SQLite (the default) runs in WAL mode with foreign keys on,
a busy timeout, and ``BEGIN IMMEDIATE`` for write transactions, so concurrent writers
queue on the database lock instead of failing half-way through an upgrade from a read
lock. PostgreSQL is reached through psycopg 3.

Services take a ``Session`` and never commit; routes, the CLI and jobs open
``db.write()`` (commit on success, roll back on any exception) or ``db.read()``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    Select,
    Table,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.types import TypeDecorator

from meterline.config import Settings
from meterline.errors import MeterlineError, NotFound
from meterline.kit.pagination import Page, cursor_key, make_page
from meterline.kit.periodic import Periodic
from meterline.kit.sqltypes import register_sqlite_functions

_WRITE_OPTION = "meterline_write"


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime with microseconds on every backend.

    PostgreSQL stores ``timestamptz``; SQLite stores UTC wall time as ISO text (which
    sorts correctly), read back as aware UTC. Naive values are refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# A 64-bit key that is SQLite's rowid there (so it autoincrements) and BIGSERIAL-like on
# PostgreSQL.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


log = logging.getLogger("meterline")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
        list[dict[str, Any]]: JSON(),
    }


class _WorkspaceRow(Protocol):
    workspace_id: Any


_Owned = TypeVar("_Owned", bound=_WorkspaceRow)


def get_owned(
    session: Session, model: type[_Owned], key: str, workspace_id: int, what: str
) -> _Owned:
    """A row by primary key that belongs to the workspace; 404 otherwise (another
    workspace's row is never told apart from none)."""
    row = session.get(model, key)
    if row is None or row.workspace_id != workspace_id:
        raise NotFound(f"No {what} {key!r}.")
    return row


def insert_unique(session: Session, row: Base, conflict: MeterlineError) -> None:
    """Insert ``row`` now; a unique-constraint violation raises ``conflict`` instead.

    The insert runs in a savepoint, so the surrounding transaction stays usable, and the
    database's constraint decides (no read-then-write race).
    """
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:
        raise conflict from exc


def newest_page(
    session: Session,
    query: Select[Any],
    key: InstrumentedAttribute[str],
    limit: int,
    after: str | None,
) -> Page[Any]:
    """One page of ``query``'s rows, newest first by ``key`` (a time-ordered public id),
    after the ``after`` cursor."""
    position = cursor_key(after, str)
    if position is not None:
        query = query.where(key < position)
    rows = list(session.scalars(query.order_by(key.desc()).limit(limit + 1)))
    return make_page(rows, limit, lambda row: getattr(row, key.key))


def dialect_insert(session: Session, table: Table) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def normalize_url(url: str) -> URL:
    """Accept the URLs users write: ``postgresql://`` and ``postgres://`` use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {url!r}") from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(
            f"unsupported database {parsed.get_backend_name()!r}: use SQLite or PostgreSQL"
        )
    return parsed


def _in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _sqlite_engine(url: URL, settings: Settings, autocheckpoint_pages: int) -> Engine:
    in_memory = _in_memory(url)
    kwargs: dict[str, Any] = {
        "connect_args": {
            "check_same_thread": False,
            "timeout": settings.sqlite_busy_timeout_ms / 1000,
        }
    }
    if in_memory:
        kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_size"] = settings.db_pool_size
        kwargs["max_overflow"] = settings.db_pool_size
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            # Checkpoint every ~40 MB of WAL instead of ~4 MB: measured 1.4x faster
            # ingestion with a unique index on event ids (README, Performance). With a
            # background ``Checkpointer`` (the server), commits leave it alone: the
            # limit is only a backstop.
            cursor.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint_pages}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
        cursor.execute(f"PRAGMA synchronous={settings.sqlite_synchronous}")
        cursor.execute(f"PRAGMA cache_size=-{int(settings.sqlite_cache_mib) * 1024}")
        cursor.close()
        register_sqlite_functions(dbapi_conn)  # type: ignore[arg-type]

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class WriteTurn:
    """The SQLite write lock's queue: a re-entrant lock for this process's threads, then
    (for a database file) an exclusive ``flock`` on ``lock_path`` for its processes.

    A waiter tries the file lock every 50 to 500 µs (not SQLite's 1 to 100 ms). A
    waiter that has not had its turn within ``timeout`` goes on to SQLite's own lock
    (and its busy timeout), so a stuck process can only slow others down, not stop them.
    """

    def __init__(self, lock_path: str | None, timeout: float) -> None:
        self._threads = threading.RLock()
        self._path = lock_path
        self._timeout = timeout
        self._fd: int | None = None
        self._depth = 0  # re-entered turns of the thread holding it
        self._held = False  # this process holds the file lock

    def __enter__(self) -> None:
        self._threads.acquire()
        self._depth += 1
        if self._depth == 1 and self._path is not None:
            self._held = self._lock_file()

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._held:
            self._held = False
            assert self._fd is not None
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def _lock_file(self) -> bool:
        assert self._path is not None
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            deadline = time.monotonic() + self._timeout
            pause = 0.00005
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(pause)
                    pause = min(pause * 2, 0.0005)
        except OSError:  # no lock file possible (a read-only folder): SQLite's lock only
            log.debug("no write lock file at %s", self._path, exc_info=True)
            return False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Database:
    """A process's handle on its database: the engine and the unit of work."""

    def __init__(
        self, url: str, settings: Settings | None = None, *, background_checkpoints: bool = False
    ) -> None:
        """``background_checkpoints``: SQLite's WAL is moved into the database by a
        ``Checkpointer`` thread, never inside a commit (the server)."""
        self.settings = settings or Settings(database_url=url)
        self.url = normalize_url(url)
        if self.is_sqlite:
            pages = 1_000_000 if background_checkpoints else 10_000
            self.engine = _sqlite_engine(self.url, self.settings, pages)
        else:
            self.engine = create_engine(
                self.url,
                pool_size=self.settings.db_pool_size,
                max_overflow=self.settings.db_pool_size,
                # No ping before each checkout (a round trip per transaction on the hot
                # path): a connection found dead fails its one request (a decision
                # fails closed) and SQLAlchemy then discards the whole pool.
                pool_recycle=3600,
            )
        self.write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._reader = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._writer = sessionmaker(bind=self.write_engine, expire_on_commit=False)
        # SQLite has one writer at a time. Threads of this process queue for it here,
        # and Meterline processes on one file (serve and its worker) at a lock file
        # beside it, instead of in SQLite's busy handler, which sleeps 1, 2, 5 … 100 ms
        # between tries and so turns a short queue into long waits. Other programs
        # still meet at SQLite's own lock (BEGIN IMMEDIATE): these locks are for speed,
        # never what correctness rests on.
        self._write_turn: AbstractContextManager[Any] = nullcontext()
        if self.is_sqlite:
            path = self.url.database or ""
            named = not _in_memory(self.url) and not path.startswith("file:")  # a plain path
            self._write_turn = WriteTurn(
                f"{path}-writer" if named else None,
                self.settings.sqlite_busy_timeout_ms / 1000,
            )

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A read-write transaction: committed when the block ends, rolled back on error."""
        with self._write_turn, self._writer() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit: nothing is committed; the connection's transaction is rolled
        back when it returns to the pool. Loaded objects stay readable afterwards."""
        with self._reader() as session:
            yield session

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
        if isinstance(self._write_turn, WriteTurn):
            self._write_turn.close()


def checkpointer(db: Database, interval_seconds: float = 1.0) -> Periodic:
    """Copies SQLite's write-ahead log into the database file from a thread of its own,
    once a second (``PRAGMA wal_checkpoint(PASSIVE)``: it never waits for, nor blocks,
    readers and writers). Left to autocheckpointing, that copy and its fsync run inside
    whichever commit crosses the WAL size limit, stalling every request queued behind
    that commit for a tenth of a second or more. A failed checkpoint is retried next
    time; the WAL is safe."""

    def checkpoint() -> None:
        connection = db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.close()
        finally:
            connection.close()

    return Periodic("WAL checkpoint", interval_seconds, checkpoint)
