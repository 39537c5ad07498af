"""Latency of `check` with `consume`, and the overshoot of a 200-way concurrent run.

1. In-process: `entitlements.service.check(consume=True)` in its own write transaction
   (the durable commit included), N calls; p50/p99. Again for a feature with a credit
   cost (the consume also locks and debits the customer's ledger). On SQLite also with
   `synchronous=NORMAL` (no fsync per commit: survives a process crash, not power loss).
2. Over HTTP: a real `meterline serve`, driven from this (separate) process at a fixed
   rate (default 500 requests/s, open loop); each latency is measured from the moment
   the request was due, so a slow server cannot hide its queue; p50/p99.
3. Overshoot: 200 threads consume at once against a hard limit of 100 (two
   `meterline serve` processes on one database); prints how many were allowed beyond
   the limit (must be 0) and whether every allowed consume was stored.

    python benchmarks/check.py                       # SQLite
    python benchmarks/check.py --backend postgres
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from decimal import Decimal
from typing import Any

import httpx
import orjson
from _support import fresh_database, percentile, serve, size, worker

from meterline import migrations
from meterline.auth import onboarding
from meterline.config import Settings
from meterline.credits import service as credits
from meterline.credits.schemas import GrantCreate
from meterline.customers import service as customers
from meterline.customers.schemas import CustomerCreate
from meterline.db import Database
from meterline.entitlements import service as entitlements
from meterline.entitlements.schemas import CheckRequest
from meterline.kit.cache import TTLCache
from meterline.kit.time import utc_now
from meterline.meters import service as meters
from meterline.meters.schemas import MeterCreate
from meterline.plans import service as plans
from meterline.plans.schemas import PlanCreate
from meterline.subscriptions import service as subscriptions
from meterline.subscriptions.schemas import SubscriptionCreate

CUSTOMERS = size(100, 10)
PLAN: dict[str, Any] = {
    "key": "pro",
    "name": "Pro",
    "currency": "USD",
    "features": {
        "question": {
            "limits": [
                {"window": "day", "max": "1000000", "enforcement": "hard"},
                {"window": "month", "max": "10000000", "enforcement": "hard"},
            ]
        },
        # The same, with a credit cost: each consume also debits the ledger.
        "insight": {
            "credit_cost": {"per_unit": "1"},
            "limits": [{"window": "day", "max": "1000000", "enforcement": "hard"}],
        },
    },
}


def in_process(
    database_url: str, calls: int, synchronous: str = "FULL", feature: str = "question"
) -> list[float]:
    settings = Settings(database_url=database_url, sqlite_synchronous=synchronous)
    db = Database(database_url, settings)
    migrations.upgrade(db)
    with db.write() as session:
        workspace_id = onboarding.create_workspace(session, "bench").workspace.id
        for key in ("question", "insight"):
            meters.create(
                session, workspace_id, MeterCreate(key=key, event_type=key, aggregation="count")
            )
        plans.create(session, workspace_id, PlanCreate.model_validate(PLAN))
        for i in range(CUSTOMERS):
            customers.create(session, workspace_id, CustomerCreate(external_id=f"c{i}"))
            subscriptions.create(
                session, workspace_id, SubscriptionCreate(customer=f"c{i}", plan="pro")
            )
            grant = GrantCreate(amount=Decimal(10**9))
            credits.grant(session, workspace_id, f"c{i}", grant, utc_now())
    cache: TTLCache[tuple[int, str], entitlements.Standing | None] = TTLCache(60)
    timings = []
    for i in range(calls + 200):
        request = CheckRequest(
            customer=f"c{i % CUSTOMERS}", feature=feature, consume=True, quantity=Decimal(1)
        )
        started = time.perf_counter()
        with db.write() as session:
            found = entitlements.cached_standing(cache, session, workspace_id, request.customer)
            decision = entitlements.check(session, workspace_id, request, found, utc_now())
        elapsed = time.perf_counter() - started
        assert decision.allowed
        if i >= 200:  # the first calls make each customer's counters
            timings.append(elapsed)
    db.dispose()
    return timings


def setup_http(base: str, key: str, limit: str | None = None) -> httpx.Client:
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    for name in ("question", "insight"):
        meter = {"key": name, "event_type": name, "aggregation": "count"}
        client.post("/v1/meters", json=meter).raise_for_status()
    plan = PLAN
    if limit is not None:
        plan = {**PLAN, "features": {"question": {"limits": [{"window": "day", "max": limit}]}}}
    client.post("/v1/plans", json=plan).raise_for_status()
    for i in range(CUSTOMERS):
        client.post("/v1/customers", json={"external_id": f"c{i}"}).raise_for_status()
        client.post(
            "/v1/subscriptions", json={"customer": f"c{i}", "plan": "pro"}
        ).raise_for_status()
    return client


def over_http(base: str, key: str, rate: float, seconds: float) -> tuple[list[float], int]:
    """Open loop at ``rate`` requests/s over kept-alive connections; each latency runs
    from the request's due time. The load generator writes raw HTTP/1.1 with asyncio
    streams, so it takes little of the CPU the server needs."""
    setup_http(base, key).close()
    time.sleep(size(8, 0))  # the new subscriptions' first billing-cycle jobs run (steady state)
    return asyncio.run(_open_loop(base, key, rate, seconds))


def _request(host: str, key: str, customer: str) -> bytes:
    body = orjson.dumps({"customer": customer, "feature": "question", "consume": True})
    head = (
        f"POST /v1/check HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> None:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    body = await reader.readexactly(length)
    if not head.startswith(b"HTTP/1.1 200") or b'"allowed":true' not in body:
        raise RuntimeError((head + body).decode())


async def _open_loop(base: str, key: str, rate: float, seconds: float) -> tuple[list[float], int]:
    host, port = base.removeprefix("http://").split(":")
    requests = [_request(f"{host}:{port}", key, f"c{i}") for i in range(CUSTOMERS)]
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(64):
        idle.put_nowait(await asyncio.open_connection(host, int(port)))
    for i in range(CUSTOMERS):  # warm up: each customer's counters made
        connection = await idle.get()
        await _exchange(*connection, requests[i])
        idle.put_nowait(connection)
    timings: list[float] = []
    loop = asyncio.get_running_loop()

    async def one(i: int, due: float) -> None:
        connection = await idle.get()
        try:
            await _exchange(*connection, requests[i % CUSTOMERS])
        finally:
            idle.put_nowait(connection)
        timings.append(loop.time() - due)

    total = int(rate * seconds)
    start = loop.time() + 0.2
    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    achieved = int(total / (loop.time() - start))
    while not idle.empty():
        idle.get_nowait()[1].close()
    return timings, achieved


def overshoot(database_url: str) -> tuple[int, int, bool]:
    """200 simultaneous consumes against a hard limit of 100 on two processes."""
    limit = size(100, 10)
    calls = 2 * limit
    with ExitStack() as stack:
        first, key = stack.enter_context(serve(database_url))
        second, _ = stack.enter_context(serve(database_url, key=key))
        admin = setup_http(first, key, limit=str(limit))
        clients = [
            httpx.Client(base_url=b, headers={"Authorization": f"Bearer {key}"}, timeout=120)
            for b in (first, second)
        ]
        barrier = threading.Barrier(calls)

        def consume(i: int) -> str | None:
            barrier.wait()
            body = {"customer": "c0", "feature": "question", "consume": True, "id": f"o{i}"}
            r = clients[i % 2].post("/v1/check", json=body)
            if r.status_code == 503:  # failed closed: denied, nothing recorded
                return None
            r.raise_for_status()
            answer = r.json()
            return str(answer["event_id"]) if answer["allowed"] else None

        with ThreadPoolExecutor(max_workers=calls) as pool:
            allowed = [e for e in pool.map(consume, range(calls)) if e is not None]
        stored = admin.get("/v1/events", params={"customer": "c0", "limit": 1000}).json()["data"]
        every_one_stored = sorted(e["id"] for e in stored) == sorted(allowed)
        return len(allowed), max(0, len(allowed) - limit), every_one_stored


def _ms(timings: list[float]) -> str:
    p50, p99 = percentile(timings, 0.5) * 1000, percentile(timings, 0.99) * 1000
    return f"p50 {p50:.3f} ms, p99 {p99:.3f} ms ({len(timings):,} calls)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--calls", type=int, default=size(5000, 100), help="in-process calls")
    parser.add_argument("--rate", type=float, default=500, help="HTTP requests per second")
    parser.add_argument("--seconds", type=float, default=size(10, 1), help="HTTP run length")
    parser.add_argument("--workers", type=int, default=1, help="`meterline serve` processes")
    parser.add_argument(
        "--job-worker",
        action="store_true",
        help="background jobs (alert evaluation) in a `meterline worker` process, not in serve",
    )
    args = parser.parse_args()
    print(f"check with consume — {args.backend}")
    with fresh_database(args.backend) as url:
        print(f"  in-process:          {_ms(in_process(url, args.calls))}")
    with fresh_database(args.backend) as url:
        timings = in_process(url, args.calls, feature="insight")
        print(f"  in-process, credits: {_ms(timings)} (the consume also debits the ledger)")
    if args.backend == "sqlite":  # the same without an fsync per commit, for comparison
        with fresh_database(args.backend) as url:
            timings = in_process(url, args.calls, synchronous="NORMAL")
            print(f"  in-process, NORMAL:  {_ms(timings)} (synchronous=NORMAL)")
    if args.job_worker:
        os.environ["METERLINE_JOBS_POLL_SECONDS"] = "0"  # serve runs none
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database(args.backend))
        base, key = stack.enter_context(serve(url, workers=args.workers))
        if args.job_worker:
            stack.enter_context(worker(url))
        timings, achieved = over_http(base, key, args.rate, args.seconds)
        jobs = "jobs in a worker process" if args.job_worker else "jobs in serve"
        print(
            f"  HTTP at {args.rate:.0f}/s:       {_ms(timings)}; achieved {achieved}/s "
            f"({args.workers} server process{'es' if args.workers > 1 else ''}, {jobs})"
        )
    with fresh_database(args.backend) as url:
        allowed, over, stored = overshoot(url)
        print(
            f"  {2 * size(100, 10)}-way concurrent:  {allowed} allowed of limit "
            f"{size(100, 10)}, overshoot {over}, "
            f"every allowed consume stored: {stored}"
        )


if __name__ == "__main__":
    main()
