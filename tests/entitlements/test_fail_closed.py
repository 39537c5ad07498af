"""When the database cannot decide in time, a check is denied, never allowed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from limits_support import customer_on, meter, plan_with
from meterline.app import create_app
from meterline.auth import onboarding
from meterline.config import Settings
from meterline.db import Database
from support import Api, assert_problem


@pytest.fixture
def impatient(database_url: str) -> Iterator[tuple[Api, str]]:
    settings = Settings(
        database_url=database_url, sqlite_busy_timeout_ms=200, decision_timeout_ms=200
    )
    db = Database(database_url, settings)
    with db.write() as session:
        created = onboarding.create_workspace(session, "alpha")
    db.dispose()
    with TestClient(create_app(settings)) as client:
        yield Api(client, created.admin_key, created.workspace.id), database_url


def test_a_locked_database_means_denied(impatient: tuple[Api, str]) -> None:
    api, url = impatient
    meter(api, "question")
    plan_with(api, {"question": {"limits": [{"window": "day", "max": "100"}]}})
    customer_on(api, "alice")
    body = {"customer": "alice", "feature": "question", "consume": True}
    assert api.post("/v1/check", json=body).json()["allowed"] is True
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        blocker: sqlite3.Connection | psycopg.Connection[tuple[object, ...]] = sqlite3.connect(
            parsed.database or "", isolation_level=None
        )
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    else:
        blocker = psycopg.connect(
            parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        )
        blocker.execute("SELECT * FROM usage_guards FOR UPDATE")  # another writer holds the guard
    try:
        problem = assert_problem(api.post("/v1/check", json=body), 503, "decision_unavailable")
        assert (problem["allowed"], problem["reason"]) == (False, "unavailable")
        hold = {"customer": "alice", "feature": "question", "quantity": 1}
        assert_problem(api.post("/v1/reservations", json=hold), 503, "decision_unavailable")
    finally:
        blocker.rollback()
        blocker.close()
    # Nothing was recorded by the denied consume; once the lock is gone, checks work.
    after = api.post("/v1/check", json=body).json()
    assert (after["allowed"], after["limits"][0]["used"]) == (True, "2")
