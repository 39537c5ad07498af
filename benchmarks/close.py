"""Closing a billing period: N customers (default 10,000) on a ten-feature plan, each
with usage last month, have that period closed into finalized invoices by the job
runner; prints invoices per second (target: 10,000 in 30 s or less on SQLite) and the
current-usage read latency for one customer, in-process and over HTTP against a real
`meterline serve`.

    python benchmarks/close.py                        # 10,000 customers, SQLite
    python benchmarks/close.py --customers 2000 --backend postgres
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

import httpx
from _support import fresh_database, percentile, serve, size
from sqlalchemy import func, select

from meterline import migrations
from meterline.auth import onboarding
from meterline.auth import service as auth
from meterline.auth.scopes import Scope
from meterline.config import Settings
from meterline.customers import service as customers
from meterline.customers.schemas import CustomerCreate
from meterline.db import Database
from meterline.demo import CATALOG, DEMO_METERS
from meterline.invoicing.models import Invoice
from meterline.jobs.registry import runner
from meterline.meters import service as meters
from meterline.plans import service as plans
from meterline.plans.schemas import PlanCreate
from meterline.pricing import service as pricing
from meterline.recording import pipeline
from meterline.subscriptions import service as subscriptions
from meterline.subscriptions.schemas import SubscriptionCreate
from meterline.workspaces import service as workspaces
from meterline.workspaces.schemas import WorkspaceUpdate

KEYS = [key for key, *_ in CATALOG]


def setup(db: Database, count: int, per_customer: int) -> tuple[int, str]:
    """The workspace, its catalog plan, ``count`` subscribed customers from the start of
    last month, and ``per_customer`` events each over last month and this one."""
    now = datetime.now(UTC)
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    with db.write() as session:
        created = onboarding.create_workspace(session, "bench")
        workspace_id = created.workspace.id
        workspaces.update(session, workspace_id, WorkspaceUpdate(event_lateness_days=70))
        for meter in DEMO_METERS:
            if meter.key in KEYS:
                meters.create(session, workspace_id, meter)
        plan = PlanCreate.model_validate(
            {
                "key": "catalog",
                "name": "Catalog",
                "currency": "USD",
                "base_fee": "49.00",
                "features": {
                    key: {
                        "included": included,
                        "price": {"model": "per_unit", "unit_price": price},
                    }
                    for key, _, _, included, price in CATALOG
                },
            }
        )
        plans.create(session, workspace_id, plan)
    started = time.perf_counter()
    for first in range(0, count, 1000):
        with db.write() as session:
            for i in range(first, min(first + 1000, count)):
                customers.create(session, workspace_id, CustomerCreate(external_id=f"c{i}"))
                subscriptions.create(
                    session,
                    workspace_id,
                    SubscriptionCreate(customer=f"c{i}", plan="catalog", start_at=last_month),
                )
    print(f"{count} customers subscribed in {time.perf_counter() - started:.1f} s")
    rng = random.Random(11)
    span = (now - timedelta(minutes=5) - last_month).total_seconds()
    started = time.perf_counter()
    with db.read() as session:
        policy = pipeline.policy(session, workspace_id)
    events = []
    for i in range(count):
        for n in range(per_customer):
            key = rng.choice(KEYS)
            stamp = last_month + timedelta(seconds=rng.uniform(0, span))
            events.append(
                {
                    "id": f"e{i}-{n}",
                    "type": key,
                    "customer": f"c{i}",
                    "timestamp": stamp.isoformat(),
                    "properties": {"document": "receipt", "gb": "3"},
                }
            )
        if len(events) >= 20_000 or i == count - 1:
            valid, rejected = pipeline.check(events, policy)
            assert not rejected, rejected[:1]
            with db.write() as session:
                pipeline.record(session, policy, valid)
            events = []
    print(f"{count * per_customer} events loaded in {time.perf_counter() - started:.1f} s")
    return workspace_id, f"c{min(42, count - 1)}"


def close(db: Database, settings: Settings) -> None:
    jobs = runner(db, settings)
    started = time.perf_counter()
    ran = jobs.drain()
    elapsed = time.perf_counter() - started
    with db.read() as session:
        made = session.scalar(
            select(func.count()).select_from(Invoice).where(Invoice.status == "finalized")
        )
    print(
        f"period close: {made} invoices finalized ({ran} jobs) in {elapsed:.1f} s = "
        f"{made / elapsed:,.0f} invoices/s"
    )


def reads(db: Database, workspace_id: int, customer: str, url: str, rounds: int) -> None:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        with db.read() as session:
            pricing.current(session, workspace_id, customer, datetime.now(UTC))
        timings.append((time.perf_counter() - started) * 1000)
    print(
        f"current usage, in-process: p50 {percentile(timings, 0.5):.2f} ms, "
        f"p99 {percentile(timings, 0.99):.2f} ms"
    )
    with (
        serve(url) as (base, key),
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client,
    ):
        # The served process made its own workspace: read ours with a key of it.
        with db.write() as session:
            _, secret = auth.create_key(session, workspace_id, name="bench", scopes=[Scope.READ])
        client.headers["Authorization"] = f"Bearer {secret}"
        timings = []
        for _ in range(rounds):
            started = time.perf_counter()
            r = client.get(f"/v1/customers/{customer}/usage")
            timings.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200, r.text
        print(
            f"current usage, HTTP: p50 {percentile(timings, 0.5):.2f} ms, "
            f"p99 {percentile(timings, 0.99):.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=size(10_000, 30))
    parser.add_argument("--events-per-customer", type=int, default=20)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--reads", type=int, default=size(300, 10))
    args = parser.parse_args()
    with fresh_database(args.backend) as url:
        settings = Settings(database_url=url, credit_sweep_seconds=0)
        db = Database(url, settings)
        migrations.upgrade(db)
        workspace_id, customer = setup(db, args.customers, args.events_per_customer)
        close(db, settings)
        reads(db, workspace_id, customer, url, args.reads)
        db.dispose()


if __name__ == "__main__":
    main()
