"""Two real `meterline worker` processes close the same periods at once: every period
gets exactly one invoice, numbers run 1..N without a gap or a repeat, and no job ran
twice (a second run would have failed on the invoice's unique key and left its error)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from sqlalchemy import func, select

from cli_support import METERLINE
from meterline.db import Database
from meterline.invoicing.models import Invoice
from meterline.jobs.models import Job
from support import Api

pytestmark = pytest.mark.e2e
CUSTOMERS = 120


def test_two_workers_never_duplicate_an_invoice(api: Api, database_url: str) -> None:
    assert api.post(
        "/v1/meters", json={"key": "scan", "event_type": "scan", "aggregation": "count"}
    )
    plan = {"key": "pro", "name": "Pro", "currency": "USD", "base_fee": "10", "features": {}}
    assert api.post("/v1/plans", json=plan).status_code == 201
    for i in range(CUSTOMERS):
        assert api.post("/v1/customers", json={"external_id": f"c{i}"}).status_code == 201
        body = {"customer": f"c{i}", "plan": "pro", "start_at": "2026-01-01T00:00:00Z"}
        assert api.post("/v1/subscriptions", json=body).status_code == 201

    workers = [
        subprocess.Popen(
            [METERLINE, "worker", "--once", "--database-url", database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    db = Database(database_url)
    try:
        with db.read() as session:
            rows: list[Any] = list(session.execute(select(Invoice.number, Invoice.status)))
            per_period = list(
                session.execute(
                    select(func.count())
                    .select_from(Invoice)
                    .group_by(Invoice.subscription_id, Invoice.period_start)
                ).scalars()
            )
            errors = list(
                session.scalars(select(Job.last_error).where(Job.last_error.is_not(None)))
            )
    finally:
        db.dispose()
    periods = 10 * CUSTOMERS  # January to October have ended
    assert len(rows) == periods
    assert set(per_period) == {1}
    assert sorted(number for number, _ in rows) == [f"INV-{n:06d}" for n in range(1, periods + 1)]
    assert {status for _, status in rows} == {"finalized"}
    assert errors == []
    # Both workers did part of the work.
    ran = [int(out.split("Ran ")[1].split()[0]) for out in outputs]
    print("jobs run per worker:", ran)
    assert sum(ran) >= CUSTOMERS, outputs
