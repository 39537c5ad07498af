"""The database layer: SQLite settings, aware UTC times, the unit of work, concurrency."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text

from meterline.auth import onboarding
from meterline.config import Settings
from meterline.customers.models import Customer
from meterline.db import Database, normalize_url
from meterline.workspaces import service as workspaces
from meterline.workspaces.models import Workspace


def test_sqlite_runs_in_wal_with_foreign_keys(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("SQLite only")
    with db.read() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert session.execute(text("PRAGMA busy_timeout")).scalar() == 10_000
        assert session.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(Exception, match=r"(?i)foreign key"), db.write() as session:
        session.add(Customer(workspace_id=999_999, external_id="x", timezone="UTC", attributes={}))
        session.flush()


def test_times_come_back_aware_utc_with_microseconds(db: Database) -> None:
    berlin = timezone(timedelta(hours=1))
    moment = datetime(2026, 3, 29, 2, 30, 15, 123456, tzinfo=berlin)
    with db.write() as session:
        ws = Workspace(name="t", created_at=moment)
        session.add(ws)
    with db.read() as session:
        got = session.scalars(select(Workspace.created_at)).one()
    assert got == moment
    assert got.tzinfo is not None
    assert got.utcoffset() == timedelta(0)
    assert got.microsecond == 123456


def test_naive_times_are_refused(db: Database) -> None:
    with pytest.raises(Exception, match="naive"), db.write() as session:
        session.add(Workspace(name="t", created_at=datetime(2026, 1, 1)))  # noqa: DTZ001
        session.flush()


def test_unit_of_work_rolls_back_everything_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as session:
        onboarding.create_workspace(session, "half-done")
        raise RuntimeError("boom")
    with db.read() as session:
        assert workspaces.list_workspaces(session) == []


def test_concurrent_writers_queue_instead_of_failing(db: Database) -> None:
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(10):
                with db.write() as session:
                    # read, then write in the same transaction: the lock-upgrade case
                    session.execute(select(Workspace.id)).all()
                    session.add(Workspace(name=f"w{i}-{j}", created_at=datetime.now(UTC)))
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as session:
        assert len(workspaces.list_workspaces(session)) == 60


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:///x.db", "sqlite"),
    ],
)
def test_database_urls_users_write(given: str, driver: str) -> None:
    assert normalize_url(given).drivername == driver


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        normalize_url("mysql://u@h/db")


_HOLDER = """
import sys, time
from meterline.db import Database
db = Database(sys.argv[1])
with db.write():
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_meterline_processes_queue_for_sqlite_at_the_lock_file(
    db: Database, tmp_path: Path
) -> None:
    """Another Meterline process holding the write turn: this one waits for it at the
    lock file beside the database and goes on as soon as it is let go — not after the
    1 to 100 ms sleeps of SQLite's busy handler."""
    if not db.is_sqlite:
        pytest.skip("SQLite only")
    url = db.url.render_as_string(hide_password=False)
    hold = 0.45  # SQLite's busy handler would next look at 0.528 s
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, str(hold)], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        with db.write() as session:
            waited = time.monotonic() - started
            session.execute(text("SELECT 1"))
        holder.wait(10)
    assert Path(f"{db.url.database}-writer").exists()
    assert hold - 0.1 < waited < hold + 0.04


def test_a_stuck_turn_falls_back_to_sqlites_own_lock(tmp_path: Path) -> None:
    """A turn not had within the busy timeout goes on to SQLite's lock, whose own
    timeout then decides: a stuck lock file never blocks a writer for longer."""
    path = tmp_path / "stuck.db"
    db = Database(f"sqlite:///{path}", Settings(sqlite_busy_timeout_ms=200))
    try:
        with db.write() as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
        lock = os.open(f"{path}-writer", os.O_RDWR)
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a hung process would
        try:
            started = time.monotonic()
            with db.write() as session:
                session.execute(text("INSERT INTO t VALUES (1)"))
            assert 0.15 < time.monotonic() - started < 2
        finally:
            os.close(lock)
        with db.read() as session:
            assert session.execute(text("SELECT count(*) FROM t")).scalar() == 1
    finally:
        db.dispose()
