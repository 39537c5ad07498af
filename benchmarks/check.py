"""`check` with `consume`: latency and throughput, beside the floor of the same run.

Every row of issue 19's table, for one database per run, each with its goal:

1. In-process: `entitlements.service.check(consume=True)` in its own write transaction
   (the durable commit included), N calls; p50/p99. Also with a credit cost (the consume
   also debits the ledger); on SQLite `synchronous=NORMAL` (no fsync per commit); on
   PostgreSQL without `meterline_consume` (the seven statements one by one).
2. HTTP at a fixed rate (500/s; 2,000/s over two processes on PostgreSQL), open loop:
   each latency runs from the moment the request was due, so a slow server cannot hide
   its queue. Measured right after setup (no settle pause: whatever background work
   setup queued runs meanwhile), with background jobs where `meterline serve` puts them
   by default (its worker process) and in a separate `meterline worker`. Beside each, the
   same generator's `GET /healthz` on the same server at the same rate: the floor.
3. Sustained: `wrk` (Lua: a unique id per consume) against a default `serve`; requests/s
   and p99 beside wrk's `GET /healthz` on the same server.
4. Overshoot: 200 threads consume at once against a hard limit of 100 (two `serve`
   processes on one database): how many were allowed beyond the limit (must be 0) and
   whether every allowed consume was stored.

    python benchmarks/check.py                       # SQLite
    python benchmarks/check.py --backend postgres
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import orjson
from _load import Run, http_request, ok_status, open_loop, wrk, wrk_posts
from _support import fresh_database, percentile, serve, size, worker

from meterline import migrations
from meterline.auth import onboarding
from meterline.config import Settings
from meterline.credits import service as credits
from meterline.credits.schemas import GrantCreate
from meterline.customers import service as customers
from meterline.customers.schemas import CustomerCreate
from meterline.db import Database
from meterline.entitlements import onecall
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
                {"window": "day", "max": "100000000", "enforcement": "hard"},
                {"window": "month", "max": "1000000000", "enforcement": "hard"},
            ]
        },
        # The same, with a credit cost: each consume also debits the ledger.
        "insight": {
            "credit_cost": {"per_unit": "1"},
            "limits": [{"window": "day", "max": "100000000", "enforcement": "hard"}],
        },
    },
}


@dataclass
class Goal:
    p50_ms: float | None = None
    p99_ms: float | None = None
    rate: float | None = None  # requests/s at least

    def met(self, p50: float, p99: float, rate: float | None = None) -> bool:
        return (
            (self.p50_ms is None or p50 <= self.p50_ms)
            and (self.p99_ms is None or p99 <= self.p99_ms)
            and (self.rate is None or (rate is not None and rate >= self.rate))
        )

    def __str__(self) -> str:
        parts = []
        if self.rate is not None:
            parts.append(f"≥ {self.rate:,.0f}/s")
        if self.p50_ms is not None:
            parts.append(f"p50 ≤ {self.p50_ms:g} ms")
        if self.p99_ms is not None:
            parts.append(f"p99 ≤ {self.p99_ms:g} ms")
        return ", ".join(parts)


# The goals of issue 19, by backend and row.
GOALS: dict[tuple[str, str], Goal] = {
    ("sqlite", "http-default"): Goal(p99_ms=5),
    ("sqlite", "http-worker"): Goal(p99_ms=3),
    ("sqlite", "in-process"): Goal(p50_ms=0.3, p99_ms=0.6),
    ("sqlite", "sustained"): Goal(rate=3000, p99_ms=20),
    ("postgres", "in-process"): Goal(p50_ms=0.8, p99_ms=2),
    ("postgres", "http-two"): Goal(rate=2000 * 0.98, p99_ms=10),
}
verdicts: list[bool] = []


def verdict(backend: str, row: str, p50: float, p99: float, rate: float | None = None) -> str:
    goal = GOALS.get((backend, row))
    if goal is None:
        return ""
    met = goal.met(p50, p99, rate)
    verdicts.append(met)
    return f"  [goal {goal}: {'met' if met else 'NOT MET'}]"


def in_process(
    database_url: str,
    calls: int,
    synchronous: str = "FULL",
    feature: str = "question",
    function: bool = True,
) -> list[float]:
    """``function=False``: PostgreSQL's consume statement by statement, as before
    ``meterline_consume`` (the comparison row)."""
    onecall.ENABLED = function
    try:
        return _in_process(database_url, calls, synchronous, feature)
    finally:
        onecall.ENABLED = True


def _in_process(database_url: str, calls: int, synchronous: str, feature: str) -> list[float]:
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


refusals: list[bytes] = []  # the first few answers that were not "allowed"


def _allowed(head: bytes, body: bytes) -> bool:
    if head.startswith(b"HTTP/1.1 200") and b'"allowed":true' in body:
        return True
    if len(refusals) < 3:
        refusals.append(head.split(b"\r\n")[0] + b" " + body[:300])
    return False


def consumes(base: str, key: str, count: int) -> list[bytes]:
    host = base.removeprefix("http://")
    run = uuid.uuid4().hex[:8]
    return [
        http_request(
            "POST",
            "/v1/check",
            host,
            key,
            orjson.dumps(
                {
                    "id": f"{run}-{i}",
                    "customer": f"c{i % CUSTOMERS}",
                    "feature": "question",
                    "consume": True,
                }
            ),
        )
        for i in range(count)
    ]


def over_http(base: str, key: str, rate: float, seconds: float) -> tuple[Run, Run]:
    """The consumes at ``rate`` right after setup, then ``GET /healthz`` at the same rate
    on the same server (the floor)."""
    setup_http(base, key).close()
    # No settle pause: whatever setup left to background work runs meanwhile.
    total = int(rate * seconds) + CUSTOMERS
    run = open_loop(base, consumes(base, key, total), rate, seconds, _allowed, warm=CUSTOMERS)
    health = [http_request("GET", "/healthz", base.removeprefix("http://"))]
    floor = open_loop(base, health, rate, seconds, ok_status)
    if run.wrong:
        raise RuntimeError(f"{run.wrong} consumes were not allowed, as {refusals}")
    return run, floor


def sustained(base: str, key: str, seconds: float, connections: int) -> tuple[Any, Any, int]:
    """wrk's consumes, then its /healthz, on a server set up already; returns both and
    the consumes stored."""
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    script = wrk_posts(
        "/v1/check",
        key,
        '{"id":"%s-%d","customer":"c%d","feature":"question","consume":true}',
        f"counter % {CUSTOMERS}",
    )
    load = wrk(f"{base}/v1/check", seconds, connections, script)
    health = wrk(f"{base}/healthz", seconds, connections)
    stored = sum(
        Decimal(row["value"])
        for row in admin.get("/v1/meters/question/usage").raise_for_status().json()["data"]
    )
    admin.close()
    return load, health, int(stored)


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


def _ms(timings: list[float]) -> tuple[float, float]:
    return percentile(timings, 0.5) * 1000, percentile(timings, 0.99) * 1000


def _in_process_row(backend: str, label: str, row: str, timings: list[float]) -> None:
    p50, p99 = _ms(timings)
    print(
        f"  {label:<34} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  ({len(timings):,} calls)"
        + verdict(backend, row, p50, p99)
    )


def _http_row(backend: str, label: str, row: str, run: Run, floor: Run, rate: float) -> None:
    p50, p99 = _ms(run.timings)
    f50, f99 = _ms(floor.timings)
    print(
        f"  {label:<34} p50 {p50:6.3f} ms  p99 {p99:7.3f} ms  achieved {run.achieved:,.0f}/s "
        f"of {rate:,.0f}; /healthz floor p50 {f50:.3f} p99 {f99:.3f} ms"
        + verdict(backend, row, p50, p99, run.achieved)
    )
    # Where the tail sits: each second's p99, in the order answered (about the order due: a
    # burst of background work right after setup shows in the first seconds).
    per = max(1, int(rate))
    seconds = [run.timings[i : i + per] for i in range(0, len(run.timings), per)]
    print(f"  {'':<34} p99 by second: " + " ".join(f"{_ms(s)[1]:.1f}" for s in seconds if s))


def _sustained_row(backend: str, base: str, key: str, args: argparse.Namespace) -> None:
    if not shutil.which("wrk"):
        print("  sustained: wrk is not installed (apt install wrk)")
        return
    found, health, stored = sustained(base, key, args.seconds, args.wrk_connections)
    if stored < found.requests - found.bad:
        raise RuntimeError(f"{found.requests - found.bad} consumes allowed, {stored} stored")
    goal = verdict(backend, "sustained", found.p50_ms, found.p99_ms, found.rate)
    print(
        f"  {'sustained (wrk), default serve':<34} {found.rate:8,.0f}/s  p50 "
        f"{found.p50_ms:.2f} ms  p99 {found.p99_ms:.2f} ms  ({found.bad} failed, "
        f"{stored:,} stored); /healthz {health.rate:,.0f}/s p99 {health.p99_ms:.2f} ms" + goal
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--calls", type=int, default=size(5000, 100), help="in-process calls")
    parser.add_argument("--rate", type=float, default=500, help="HTTP requests per second")
    parser.add_argument(
        "--two-process-rate",
        type=float,
        default=size(2000, 200),
        help="requests per second over two `serve` processes",
    )
    parser.add_argument("--seconds", type=float, default=size(10, 1), help="HTTP run length")
    parser.add_argument("--wrk-connections", type=int, default=32)
    args = parser.parse_args()
    backend = args.backend
    load = os.getloadavg()[0]
    print(f"check with consume — {backend} (load average {load:.1f} at start)")

    with fresh_database(backend) as url:
        _in_process_row(backend, "in-process", "in-process", in_process(url, args.calls))
    with fresh_database(backend) as url:
        timings = in_process(url, args.calls, feature="insight")
        _in_process_row(backend, "in-process, with credits", "in-process-credits", timings)
    if backend == "postgres":  # the consume statement by statement, for comparison
        with fresh_database(backend) as url:
            timings = in_process(url, args.calls, function=False)
            _in_process_row(backend, "in-process, without the function", "stepwise", timings)
    if backend == "sqlite":  # the same without an fsync per commit, for comparison
        with fresh_database(backend) as url:
            timings = in_process(url, args.calls, synchronous="NORMAL")
            _in_process_row(backend, "in-process, synchronous=NORMAL", "normal", timings)

    # The default serve: the fixed rate right after setup, then wrk's sustained consumes.
    with fresh_database(backend) as url, serve(url) as (base, key):
        run, floor = over_http(base, key, args.rate, args.seconds)
        _http_row(
            backend,
            f"HTTP {args.rate:,.0f}/s, default serve",
            "http-default",
            run,
            floor,
            args.rate,
        )
        _sustained_row(backend, base, key, args)
    with ExitStack() as stack:  # serve runs no jobs; a `meterline worker` runs them
        url = stack.enter_context(fresh_database(backend))
        base, key = stack.enter_context(serve(url, env={"METERLINE_JOBS_MODE": "off"}))
        stack.enter_context(worker(url))
        run, floor = over_http(base, key, args.rate, args.seconds)
        _http_row(
            backend,
            f"HTTP {args.rate:,.0f}/s, jobs in a worker",
            "http-worker",
            run,
            floor,
            args.rate,
        )
    with fresh_database(backend) as url, serve(url, workers=2) as (base, key):
        rate = args.two_process_rate
        run, floor = over_http(base, key, rate, args.seconds)
        _http_row(backend, f"HTTP {rate:,.0f}/s, two serve processes", "http-two", run, floor, rate)
    with fresh_database(backend) as url:
        allowed, over, stored_all = overshoot(url)
        print(
            f"  {2 * size(100, 10)}-way concurrent: {allowed} allowed of limit "
            f"{size(100, 10)}, overshoot {over}, every allowed consume stored: {stored_all}"
        )
    met = sum(verdicts)
    print(f"goals met: {met} of {len(verdicts)}")


if __name__ == "__main__":
    main()
