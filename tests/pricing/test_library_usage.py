"""Library mode bills too: ``ml.usage(customer)`` prices the current period, and
``ml.run_jobs()`` closes ended periods into invoices (no background thread there)."""

from __future__ import annotations

from sqlalchemy import select

import meterline
from jobs_support import at, frozen
from meterline.db import Database
from meterline.invoicing.models import Invoice


def test_usage_and_period_close_in_process(database_url: str) -> None:
    with frozen("2026-08-10T00:00:00") as clock:
        ml = meterline.Meterline(database_url)
        ml.create_meter(key="scan", event_type="scan", aggregation="count")
        ml.create_plan(
            key="pro",
            name="Pro",
            currency="USD",
            base_fee="50",
            features={
                "scan": {
                    "included": "2",
                    "price": {"model": "package", "package_size": "10", "package_price": "1.50"},
                }
            },
        )
        ml.create_customer(external_id="acme")
        ml.subscribe(customer="acme", plan="pro", start_at="2026-08-10T00:00:00Z")
        for i in range(13):  # 11 billable: two packages of 10
            ml.record(customer="acme", type="scan", id=f"s{i}")
        usage = ml.usage("acme")
        assert usage.total == usage.base_fee + 3
        assert (str(usage.base_fee), str(usage.total)) == ("35.48", "38.48")
        assert ml.run_jobs() >= 1
        clock.set(at("2026-09-01T00:00:00"))
        ml.run_jobs()
        ml.close()
    db = Database(database_url)
    try:
        with db.read() as session:
            rows = list(session.execute(select(Invoice.number, Invoice.total, Invoice.status)))
    finally:
        db.dispose()
    assert [(n, str(t), s) for n, t, s in rows] == [("INV-000001", "38.48", "finalized")]
