"""Dashboard page times: every page on the demo, then the overview, the customers list
and a meter page with 1,000 customers and 10,000,000 events.

Server time is measured at the client over loopback, one request at a time, against a
real `meterline serve` (p50 and p95 of N requests after one warm-up), beside a floor:
`GET /healthz` and a static file.

The large database is built in-process through the ingestion service, its events in
order of time as they arrive in production (~35 minutes for 10M events on 2 cores),
and cached in ``--cache`` (default ``~/.cache/meterline/bench-dashboard-<customers>-
<events>.db``); a cache younger than 12 hours is
reused (events are placed relative to when it was built). Its revenue snapshot (every
customer's upcoming invoice) is taken once, timed, and then kept
(``METERLINE_DASHBOARD_SNAPSHOT_SECONDS`` large) so page times are not mixed with it.

    python benchmarks/dashboard.py                  # demo, then 1,000 customers / 10M events
    python benchmarks/dashboard.py --demo-only
    python benchmarks/dashboard.py --events 1000000

Under METERLINE_BENCH_QUICK=1 (the README test) the defaults shrink to 20 customers,
2,000 events and 3 requests per page, in a temporary database (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from _support import QUICK, percentile, serve, size

from meterline import migrations
from meterline.auth import onboarding
from meterline.customers import service as customers
from meterline.customers.schemas import CustomerCreate
from meterline.db import Database
from meterline.jobs.registry import runner
from meterline.meters import service as meters
from meterline.meters.schemas import MeterCreate
from meterline.plans import service as plans
from meterline.plans.schemas import PlanCreate
from meterline.recording import pipeline
from meterline.subscriptions import service as subscriptions
from meterline.subscriptions.schemas import SubscriptionCreate

DEMO_PAGES = [
    "/dashboard",
    "/dashboard?range=30d",
    "/dashboard/customers",
    "/dashboard/customers/org_acme",
    "/dashboard/customers/user_alice",
    "/dashboard/meters",
    "/dashboard/meters/api_call",
    "/dashboard/meters/llm_tokens?range=30d&group_by=model",
    "/dashboard/plans",
    "/dashboard/plans/pro",
    "/dashboard/revenue",
    "/dashboard/invoices",
    "/dashboard/alerts",
    "/dashboard/webhooks",
    "/dashboard/api-keys",
    "/dashboard/stripe",
]
LARGE_PAGES = [
    "/dashboard",
    "/dashboard/customers",
    "/dashboard/meters/api_call",
    "/dashboard/meters/tokens",
    "/dashboard/meters/api_call?range=7d",
    "/dashboard/customers/customer_7",
]
FLOOR = ["/healthz", "/dashboard/static/app.css"]


def sign_in(client: httpx.Client, key: str) -> None:
    form = client.get("/dashboard/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    done = client.post(
        "/dashboard/login", data={"api_key": key, "csrf_token": token.group(1), "next": ""}
    )
    assert done.status_code == 303, done.text


def time_pages(client: httpx.Client, paths: list[str], runs: int) -> None:
    print(f"  {'page':<58} {'p50':>9} {'p95':>9}")
    for path in [*FLOOR, *paths]:
        client.get(path).raise_for_status()  # warm-up
        timings = []
        for _ in range(runs):
            began = time.perf_counter()
            answer = client.get(path)
            timings.append(time.perf_counter() - began)
            answer.raise_for_status()
        p50, p95 = percentile(timings, 0.5) * 1000, percentile(timings, 0.95) * 1000
        label = f"{path} (floor)" if path in FLOOR else path
        print(f"  {label:<58} {p50:7.1f} ms {p95:7.1f} ms", flush=True)


def wait_for_snapshot(client: httpx.Client) -> str:
    """Opens the overview until its revenue snapshot is there; returns what it says."""
    started = time.perf_counter()
    while True:
        page = client.get("/dashboard", timeout=120).text
        found = re.search(
            r"As of ([^(]+)\(every billed customer's upcoming invoice, computed in ([\d.]+) s\)",
            page,
        )
        if found:
            return f"as of {found.group(1).strip()}, computed in {found.group(2)} s"
        if time.perf_counter() - started > 1800:
            raise TimeoutError("no snapshot after 30 minutes")
        time.sleep(2)


def demo(runs: int) -> None:
    print(f"demo: meterline serve --demo, {runs} requests per page")
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'demo.db'}"
        with serve(url, extra=("--demo",)) as (base, key), httpx.Client(base_url=base) as client:
            sign_in(client, key)
            print(f"  revenue snapshot: {wait_for_snapshot(client)}")
            time_pages(client, DEMO_PAGES, runs)


# -- 1,000 customers and 10M events ----------------------------------------------------------


def _plan(key: str, fee: str, included: str) -> PlanCreate:
    return PlanCreate.model_validate(
        {
            "key": key,
            "name": key.title(),
            "currency": "USD",
            "base_fee": fee,
            "features": {
                "api_call": {
                    "included": included,
                    "price": {"model": "per_unit", "unit_price": "0.001"},
                    "limits": [{"window": "month", "max": "20000", "enforcement": "soft"}],
                },
                "tokens": {
                    "price": {
                        "model": "graduated",
                        "tiers": [
                            {"up_to": "100000", "unit_price": "0"},
                            {"up_to": None, "unit_price": "0.00002"},
                        ],
                    }
                },
                "ocr_scan": {
                    "included": "50",
                    "price": {"model": "per_unit", "unit_price": "0.05"},
                },
            },
        }
    )


def build(path: Path, how_many: int, total: int, batch: int) -> dict[str, str]:
    """The large workspace, in-process through the ingestion service."""
    path.unlink(missing_ok=True)
    db = Database(f"sqlite:///{path}")
    migrations.upgrade(db)
    key = "ml_" + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with db.write() as session:
        workspace = onboarding.create_workspace(session, "bench", admin_key=key).workspace.id
        for meter in (
            MeterCreate(
                key="api_call",
                event_type="api_call",
                aggregation="count",
                group_by=["endpoint"],
                unit="call",
            ),
            MeterCreate(
                key="tokens",
                event_type="llm",
                aggregation="sum",
                value_property="tokens",
                unit="token",
            ),
            MeterCreate(key="ocr_scan", event_type="ocr", aggregation="count", unit="scan"),
        ):
            meters.create(session, workspace, meter)
        for plan in (
            _plan("starter", "19.00", "5000"),
            _plan("growth", "99.00", "20000"),
            _plan("scale", "499.00", "100000"),
        ):
            plans.create(session, workspace, plan)
        for n in range(how_many):
            customers.create(
                session,
                workspace,
                CustomerCreate(external_id=f"customer_{n}", name=f"Customer {n}"),
            )
            subscriptions.create(
                session,
                workspace,
                SubscriptionCreate(
                    customer=f"customer_{n}",
                    plan=("starter", "growth", "scale")[n % 3],
                    start_at=now - timedelta(days=60),
                ),
            )
        policy = pipeline.policy(session, workspace)
    rng = random.Random(7)
    span = int(timedelta(days=30).total_seconds())
    newest = now - timedelta(minutes=10)
    started = time.perf_counter()
    for start in range(0, total, batch):
        raws = []
        for i in range(start, min(start + batch, total)):
            roll = rng.random()
            # In order of time, as events arrive (a minute of jitter): rows of recent
            # buckets sit together in the rollup table, as they do in production.
            offset = span * (total - i) / total + rng.uniform(-60, 60)
            stamp = (newest - timedelta(seconds=max(offset, 0))).isoformat()
            customer = f"customer_{rng.randrange(how_many)}"
            if roll < 0.7:
                kind, props = "api_call", {"endpoint": rng.choice(["/search", "/export", "/sync"])}
            elif roll < 0.9:
                kind, props = "llm", {"tokens": rng.randrange(100, 4000)}
            else:
                kind, props = "ocr", {}
            raws.append(
                {
                    "id": f"e{i}",
                    "type": kind,
                    "customer": customer,
                    "timestamp": stamp,
                    "properties": props,
                }
            )
        valid, rejected = pipeline.check(raws, policy)
        assert not rejected, rejected[:1]
        with db.write() as session:
            pipeline.record(session, policy, valid)
        done = min(start + batch, total)
        if done % (batch * 50) == 0 or done == total:
            print(
                f"  loaded {done:,} events ({done / (time.perf_counter() - started):,.0f}/s)",
                flush=True,
            )
    print(f"  closing last month's periods: {runner(db, db.settings).drain()} jobs", flush=True)
    db.dispose()
    return {"key": key, "built": now.isoformat()}


def large(cache: Path, how_many: int, total: int, batch: int, runs: int) -> None:
    marker = cache.with_suffix(".json")
    info = json.loads(marker.read_text()) if marker.is_file() and cache.is_file() else None
    if info and datetime.now(UTC) - datetime.fromisoformat(info["built"]) < timedelta(hours=12):
        print(f"{how_many:,} customers, {total:,} events: reusing {cache} (built {info['built']})")
    else:
        print(f"{how_many:,} customers, {total:,} events: building {cache}")
        cache.parent.mkdir(parents=True, exist_ok=True)
        info = build(cache, how_many, total, batch)
        marker.write_text(json.dumps(info))
    settings = {"METERLINE_DASHBOARD_SNAPSHOT_SECONDS": "86400", "METERLINE_JOBS_POLL_SECONDS": "0"}
    with (
        serve(f"sqlite:///{cache}", key=info["key"], env=settings) as (base, key),
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        sign_in(client, key)
        print(f"  revenue snapshot: {wait_for_snapshot(client)}", flush=True)
        time_pages(client, LARGE_PAGES, runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=size(1000, 20))
    parser.add_argument("--events", type=int, default=size(10_000_000, 2000))
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=size(30, 3))
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--demo-only", action="store_true")
    parser.add_argument("--large-only", action="store_true")
    args = parser.parse_args()
    if not args.large_only:
        demo(args.runs)
    if not args.demo_only:
        name = f"bench-dashboard-{args.customers}-{args.events}.db"
        if args.cache is None and QUICK:  # a throwaway workspace, never the shared cache
            with tempfile.TemporaryDirectory() as folder:
                large(Path(folder) / name, args.customers, args.events, args.batch, args.runs)
            return
        cache = args.cache or Path.home() / ".cache" / "meterline" / name
        large(cache, args.customers, args.events, args.batch, args.runs)


if __name__ == "__main__":
    main()
