"""The database going away under a mixed load: PostgreSQL's connections cut again and
again (``pg_terminate_backend``, not a restart: the server is shared), or the SQLite
file locked by another process (``BEGIN EXCLUSIVE``). Meanwhile decisions are denied
(503 `decision_unavailable`), ingestion answers 503 without acknowledging, nothing is
ever a 500; once the database is back both work again by themselves, and everything
acknowledged is stored exactly once."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal

import httpx2
import psycopg
import pytest
from sqlalchemy import make_url

from cli_support import serving
from faults_support import mixed_load, q_used, set_up, stored_ids

pytestmark = pytest.mark.e2e
OUTAGE_SECONDS = 3.0

# Holds SQLite's lock from another process: says "locked" once it has it.
_LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def _cut_postgres(database_url: str, seconds: float) -> int:
    """Terminate every connection to this test database (and only it), every 20 ms."""
    url = make_url(database_url)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    cut = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
            cut += sum(1 for (done,) in rows if done)
            time.sleep(0.02)
    return cut


def _lock_sqlite(database_url: str, seconds: float) -> None:
    path = make_url(database_url).database or ""
    with subprocess.Popen(
        [sys.executable, "-c", _LOCKER, path, str(seconds)], stdout=subprocess.PIPE, text=True
    ) as locker:
        assert locker.stdout is not None
        assert locker.stdout.readline().strip() == "locked"
        assert locker.wait(timeout=seconds + 10) == 0


def _works_again(admin: httpx2.Client, deadline: float) -> float:
    """Seconds until a consume and an event batch both succeed again."""
    started = time.monotonic()
    while time.monotonic() < deadline:
        check = admin.post("/v1/check", json={"customer": "acme", "feature": "q", "id": "after"})
        event = admin.post("/v1/events", json={"id": "after-e", "type": "x", "customer": "acme"})
        if check.status_code == 200 and event.status_code == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError("not back within the deadline")


def test_decisions_fail_closed_and_recover(database_url: str) -> None:
    key = "ml_" + secrets.token_urlsafe(32)
    env = {
        "METERLINE_BOOTSTRAP_KEY": key,
        "METERLINE_LOG_LEVEL": "error",
        "METERLINE_SQLITE_BUSY_TIMEOUT_MS": "300",  # SQLite: wait this long for the lock
        "METERLINE_DECISION_TIMEOUT_MS": "500",
        "METERLINE_CACHE_SECONDS": "1",  # keys are loaded again during the outage
    }
    headers = {"Authorization": f"Bearer {key}"}
    with (
        serving("--database-url", database_url, env=env) as server,
        httpx2.Client(base_url=server.base, headers=headers, timeout=30) as admin,
    ):
        set_up(admin)
        with mixed_load(server.base, key) as ledger:
            time.sleep(0.5)
            if database_url.startswith("sqlite"):
                _lock_sqlite(database_url, OUTAGE_SECONDS)
            else:
                assert _cut_postgres(database_url, OUTAGE_SECONDS) > 0
        recovered = _works_again(admin, time.monotonic() + 15)
        statuses = {kind: set(codes) for kind, codes in ledger.statuses.items()}
        # Only answers, never a 500: 200, or 503 with the documented codes.
        assert all(codes <= {200, 503} for codes in statuses.values()), statuses
        assert 503 in statuses["check"]
        assert 503 in statuses["events"]
        assert ledger.problems["check"] == {"decision_unavailable"}
        assert ledger.problems["events"] == {"storage_unavailable"}
        assert ledger.problems.get("hold", {"decision_unavailable"}) == {"decision_unavailable"}
        stored = Counter(stored_ids(admin))
        assert all(n == 1 for n in stored.values())
        assert [i for i in ledger.acknowledged() if i not in stored] == []
        used, limit = q_used(admin)
        assert Decimal(used) <= Decimal(limit)
        assert recovered < 10
