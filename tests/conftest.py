"""Fixtures: every database test runs on SQLite, and on PostgreSQL when
``METERLINE_TEST_POSTGRES_URL`` is set (one suite, parametrised by backend).

Isolation: SQLite tests each get a copy of a migrated template file; PostgreSQL tests
share one database created for the session and emptied before each test.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url, text

from meterline import migrations
from meterline.app import create_app
from meterline.auth import onboarding
from meterline.config import Settings
from meterline.db import Database
from meterline.models import metadata
from support import BACKENDS, PG_URL, Api


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "meterline.db"
    db = Database(f"sqlite:///{path}")
    migrations.upgrade(db)
    db.dispose()
    return path


@contextmanager
def _migrated_postgres(prefix: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database on the test server, dropped afterwards."""
    server = make_url(PG_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        db = Database(url)
        migrations.upgrade(db)
        db.dispose()
        yield url
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    if not PG_URL:
        pytest.skip("METERLINE_TEST_POSTGRES_URL is not set")
    with _migrated_postgres("meterline_test") as url:
        yield url


@pytest.fixture(scope="module")
def module_postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of one test module's own (for a server the
    module keeps running across its tests), dropped at the end."""
    if not PG_URL:
        pytest.skip("METERLINE_TEST_POSTGRES_URL is not set")
    with _migrated_postgres("meterline_module") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def own_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of this test's own (for tests that migrate down and up)."""
    if request.param == "postgres":
        with _migrated_postgres("meterline_own") as url:
            yield url
        return
    url = f"sqlite:///{tmp_path / 'own.db'}"
    db = Database(url)
    migrations.upgrade(db)
    db.dispose()
    yield url


def _empty_postgres(url: str) -> None:
    """Every table emptied and every sequence back at 1, as ``TRUNCATE … RESTART
    IDENTITY`` would leave them — by DELETE, children first: a few ms on tables this
    small, where TRUNCATE makes new files for each table and index (~0.4 s a test)."""
    db = Database(url)
    with db.write() as session:
        session.execute(
            text("; ".join(f'DELETE FROM "{t.name}"' for t in reversed(metadata.sorted_tables)))
        )
        session.execute(
            text("SELECT setval(oid::regclass, 1, false) FROM pg_class WHERE relkind = 'S'")
        )
    db.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "meterline.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    # No background jobs: tests that move the clock run them (``jobs_support.run_jobs``).
    return Settings(
        database_url=database_url,
        api_key_touch_seconds=0,
        credit_sweep_seconds=0,
        jobs_poll_seconds=0,
        webhooks_allow_private=True,  # receivers in the tests listen on 127.0.0.1
        dashboard_snapshot_seconds=0,  # revenue figures computed on each page view
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url, settings)
    yield database
    database.dispose()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _workspace(db: Database, client: TestClient, name: str) -> Api:
    with db.write() as session:
        created = onboarding.create_workspace(session, name)
        workspace_id = created.workspace.id
    return Api(client, created.admin_key, workspace_id)


@pytest.fixture
def api(db: Database, client: TestClient) -> Api:
    """Workspace A's admin."""
    return _workspace(db, client, "alpha")


@pytest.fixture
def other(db: Database, client: TestClient) -> Api:
    """Workspace B's admin: must never see workspace A."""
    return _workspace(db, client, "beta")


# The longest test files (pytest --durations on the CI machine), started first: with
# --dist loadfile a file runs whole on one process, and a long one begun last leaves the
# other processes idle at the end of the run (addopts turns xdist's own ordering, by
# number of tests, off). The rest keep their collection order.
LONGEST_FIRST = (
    "tests/test_readme.py",
    "tests/clients/test_js.py",
    "tests/dashboard/test_browser.py",
    "tests/configfile/test_apply_cli.py",
    "tests/test_cli.py",
    "tests/recording/test_usage_invariants.py",
    "tests/invoicing/test_workers_e2e.py",
    "tests/billing_sync/test_stripe_e2e.py",
    "tests/jobs/test_supervisor.py",
    "tests/test_e2e_serve.py",
    "tests/configfile/test_config_api.py",
    "tests/clients/test_python_client.py",
    "tests/credits/test_credits_concurrency_e2e.py",
    "tests/faults/test_kill9.py",
    "tests/test_benchmark_dashboard.py",
    "tests/api/test_bad_inputs.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
