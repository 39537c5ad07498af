"""kill -9 of `meterline serve` in the middle of a mixed load (consumes, holds and
settlements, event batches): after a restart, every acknowledged consume, settlement
and event is stored exactly once, no hard limit is exceeded, the credit ledgers verify,
and no background job is lost."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from decimal import Decimal

import httpx2
import pytest
from sqlalchemy import select

from cli_support import run, serving
from faults_support import BATCH_ID, mixed_load, q_used, set_up, stored_ids
from meterline.db import Database
from meterline.jobs.models import Job

pytestmark = pytest.mark.e2e


def job_keys(database_url: str) -> Counter[str]:
    db = Database(database_url)
    try:
        with db.read() as session:
            return Counter(session.scalars(select(Job.key)))
    finally:
        db.dispose()


def test_kill_9_loses_nothing_acknowledged(database_url: str) -> None:
    key = "ml_" + secrets.token_urlsafe(32)
    args = ("--database-url", database_url)
    env = {"METERLINE_BOOTSTRAP_KEY": key, "METERLINE_LOG_LEVEL": "warning"}
    headers = {"Authorization": f"Bearer {key}"}
    with serving(*args, env=env) as first:
        with httpx2.Client(base_url=first.base, headers=headers, timeout=30) as admin:
            set_up(admin)
        jobs_before = job_keys(database_url)
        with mixed_load(first.base, key) as ledger:
            time.sleep(1.0)
            first.process.kill()  # SIGKILL: no shutdown, requests cut mid-flight
            first.process.wait()
            time.sleep(0.3)
    assert ledger.consumed
    assert ledger.events
    with (
        serving(*args, env=env) as second,
        httpx2.Client(base_url=second.base, headers=headers, timeout=30) as admin,
    ):
        stored = Counter(stored_ids(admin))
        assert all(n == 1 for n in stored.values())  # nothing stored twice
        missing = [i for i in ledger.acknowledged() if i not in stored]
        assert missing == []  # every acknowledged consume, settlement and event is there
        used, limit = q_used(admin)
        counted = [i for i in stored if not BATCH_ID.fullmatch(i)]  # consumes, settlements
        assert Decimal(used) == len(counted) <= Decimal(limit)
        balance = Decimal(admin.get("/v1/customers/acme/credits").json()["balance"])
        assert balance <= 10000 - len(counted)  # each counted unit charged (holds too)
    jobs_after = job_keys(database_url)
    assert set(jobs_before) <= set(jobs_after)  # no recurring job lost
    assert max(jobs_after.values()) == 1
    verified = run("credits", "verify", "--database-url", database_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
