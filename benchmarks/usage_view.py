"""A customer's current usage view (``GET /v1/customers/{id}/usage``) while the current
15-minute bucket fills: its time per read beside the number of the bucket's events.

A subscription made at 12:04 starts its period inside a bucket. A usage view adds the
period's whole buckets from the rollups and its partial first bucket from raw events;
read as raw events, that edge costs more with every event until the bucket closes (and
stays for the whole period). Read as the bucket's rollup less the few events before the
period started, it costs the same at any traffic. This prints both: the raw read (the
naive design, ``--raw``: the edge's events folded one by one, as before) beside the
view as served.

    python benchmarks/usage_view.py
    python benchmarks/usage_view.py --backend postgres
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta
from decimal import Decimal

from _support import fresh_database, percentile, size

from meterline import migrations
from meterline.auth import onboarding
from meterline.config import Settings
from meterline.customers import service as customers
from meterline.customers.schemas import CustomerCreate
from meterline.db import Database
from meterline.ingestion.validation import ValidEvent, validate
from meterline.kit.periods import bucket_ceil, bucket_floor
from meterline.kit.time import Clock, clock, utc_now
from meterline.meters import rollups, usage
from meterline.meters import service as meters
from meterline.meters.aggregation import State
from meterline.meters.schemas import MeterCreate
from meterline.plans import service as plans
from meterline.plans.schemas import PlanCreate
from meterline.pricing import service as pricing
from meterline.recording import pipeline
from meterline.subscriptions import service as subscriptions
from meterline.subscriptions.schemas import SubscriptionCreate

STEPS = (0, size(1000, 100), size(4000, 300))
READS = size(50, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    with fresh_database(args.backend) as url:
        run(url, args.backend)


def run(url: str, backend: str) -> None:
    db = Database(url, Settings(database_url=url))
    migrations.upgrade(db)
    # The period starts 4 minutes into a bucket; the clock stays inside that bucket.
    start = bucket_floor(utc_now()) + timedelta(minutes=4)
    moment = Clock(start)
    with clock(moment):
        with db.write() as session:
            workspace_id = onboarding.create_workspace(session, "bench").workspace.id
            meters.create(
                session, workspace_id, MeterCreate(key="api", event_type="api", aggregation="count")
            )
            plan = {"key": "pro", "name": "Pro", "currency": "USD", "features": {"api": {}}}
            plans.create(session, workspace_id, PlanCreate.model_validate(plan))
            customers.create(session, workspace_id, CustomerCreate(external_id="acme"))
            subscriptions.create(
                session, workspace_id, SubscriptionCreate(customer="acme", plan="pro")
            )
        print(f"usage view — {backend}: a period begun 4 minutes into the current bucket")
        print(f"{'events in the bucket':>22} {'served p50 ms':>14} {'raw edge p50 ms':>16}")
        stored = 0
        for step in STEPS:
            moment.set(start + timedelta(seconds=30))
            _record(db, workspace_id, step - stored)
            stored = step
            # Both reads count every event of the bucket: the same number, differently.
            assert _view(db, workspace_id) == _raw_edge(db, workspace_id, start) == step
            served = _time(lambda: _view(db, workspace_id))
            raw = _time(lambda: _raw_edge(db, workspace_id, start))
            print(f"{step:>22,} {served:>14.2f} {raw:>16.2f}")
    db.dispose()


def _record(db: Database, workspace_id: int, count: int) -> None:
    now = utc_now()
    events = []
    for _ in range(count):
        found = validate({"type": "api", "customer": "acme"}, 0, now, timedelta(0))
        assert isinstance(found, ValidEvent)
        events.append(found)
    for chunk in range(0, len(events), 500):
        with db.write() as session:
            policy = pipeline.Policy(workspace_id, False, timedelta(0))
            pipeline.record(session, policy, events[chunk : chunk + 500])


def _view(db: Database, workspace_id: int) -> Decimal:
    with db.read() as session:
        read = pricing.current(session, workspace_id, "acme", utc_now())
        return read.features[0].used


def _raw_edge(db: Database, workspace_id: int, start: datetime) -> Decimal:
    """The naive edge: every event of the period's first bucket so far, folded."""
    with db.read() as session:
        spec = rollups.spec_of(meters.by_keys(session, workspace_id, {"api"})["api"])
        acme = customers.get(session, workspace_id, "acme").id
        state = State()
        scope = rollups.CustomerScope(acme, billing=True)
        edge = (start, bucket_ceil(start))
        usage._add_raw(session, workspace_id, spec, scope, *edge, lambda *_: state)
        return Decimal(state.count)


def _time(read: object) -> float:
    timings = []
    for _ in range(READS):
        began = time.perf_counter()
        read()  # type: ignore[operator]
        timings.append(time.perf_counter() - began)
    return percentile(timings, 0.5) * 1000


if __name__ == "__main__":
    main()
