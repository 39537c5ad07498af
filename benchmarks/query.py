"""Usage query latency over a large event table.

Loads N events (default 10,000,000) for 1,000 customers spread over the last 30 days,
through the ingestion service in large batches, then times a one-customer month query
with window none and window day, in-process (the query itself) and over HTTP against a
real `meterline serve`; prints p50/p99.

    python benchmarks/query.py                       # 10M events, SQLite
    python benchmarks/query.py --events 1000000 --backend postgres
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from _support import fresh_database, percentile, serve, size

from meterline import migrations
from meterline.auth import onboarding
from meterline.customers import service as customers
from meterline.db import Database
from meterline.meters import service as meters
from meterline.meters.schemas import MeterCreate
from meterline.meters.usage import usage
from meterline.recording import pipeline

CUSTOMERS = 1000


def load(db: Database, total: int, batch: int) -> tuple[int, str, float]:
    with db.write() as session:
        created = onboarding.create_workspace(session, "bench")
        meters.create(
            session,
            created.workspace.id,
            MeterCreate(key="tokens", event_type="llm", aggregation="sum", value_property="tokens"),
        )
        policy = pipeline.policy(session, created.workspace.id)
    now = datetime.now(UTC) - timedelta(minutes=10)
    span = int(timedelta(days=30).total_seconds())
    rng = random.Random(7)
    started = time.perf_counter()
    for start in range(0, total, batch):
        raws = [
            {
                "id": f"q{i}",
                "type": "llm",
                "customer": f"customer_{rng.randrange(CUSTOMERS)}",
                "timestamp": (now - timedelta(seconds=rng.randrange(span))).isoformat(),
                "properties": {"tokens": rng.randrange(1, 2000)},
            }
            for i in range(start, min(start + batch, total))
        ]
        valid, rejected = pipeline.check(raws, policy)
        assert not rejected, rejected[:1]
        with db.write() as session:
            pipeline.record(session, policy, valid)
        done = min(start + batch, total)
        if done % (batch * 50) == 0 or done == total:
            rate = done / (time.perf_counter() - started)
            print(f"  loaded {done:,} events ({rate:,.0f}/s)", flush=True)
    return created.workspace.id, created.admin_key, time.perf_counter() - started


def time_in_process(db: Database, workspace_id: int, window: str | None, runs: int) -> list[float]:
    end = datetime.now(UTC)
    start = end - timedelta(days=30)
    rng = random.Random(11)
    timings = []
    with db.read() as session:
        meter = meters.get(session, workspace_id, "tokens")
    for _ in range(runs):
        with db.read() as session:
            who = customers.get(session, workspace_id, f"customer_{rng.randrange(CUSTOMERS)}")
            began = time.perf_counter()
            rows = usage(
                session,
                workspace_id,
                meter,
                customer=who,
                start=start,
                end=end,
                window=window,
                zone=ZoneInfo("Europe/Berlin"),
            )  # type: ignore[arg-type]
            timings.append(time.perf_counter() - began)
            assert rows
    return timings


def time_http(base: str, key: str, window: str | None, runs: int) -> list[float]:
    rng = random.Random(13)
    timings = []
    end = datetime.now(UTC)
    params = {
        "from": (end - timedelta(days=30)).isoformat(),
        "to": end.isoformat(),
        "timezone": "Europe/Berlin",
    }
    if window:
        params["window"] = window
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        for _ in range(runs):
            began = time.perf_counter()
            r = client.get(
                "/v1/meters/tokens/usage",
                params={**params, "customer": f"customer_{rng.randrange(CUSTOMERS)}"},
            )
            timings.append(time.perf_counter() - began)
            r.raise_for_status()
    return timings


def _ms(timings: list[float]) -> str:
    p50, p99 = percentile(timings, 0.5) * 1000, percentile(timings, 0.99) * 1000
    return f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=size(10_000_000, 20_000))
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=size(200, 10))
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    print(
        f"query benchmark: {args.events:,} events, {CUSTOMERS} customers, 30 days, {args.backend}"
    )
    with fresh_database(args.backend) as url:
        db = Database(url)
        migrations.upgrade(db)
        workspace_id, key, seconds = load(db, args.events, args.batch)
        print(f"  load: {args.events / seconds:,.0f} events/s through the ingestion service")
        for window in (None, "day"):
            local = time_in_process(db, workspace_id, window, args.runs)
            print(f"  month, window={window or 'none':<4} in-process: {_ms(local)}")
        db.dispose()
        with serve(url) as (base, _):
            for window in (None, "day"):
                remote = time_http(base, key, window, args.runs)
                print(f"  month, window={window or 'none':<4} over HTTP:   {_ms(remote)}")


if __name__ == "__main__":
    main()
