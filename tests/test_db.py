"""The database layer: SQLite settings, aware UTC times, the unit of work, concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from meterline.auth import onboarding
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
