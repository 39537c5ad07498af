"""Ingestion throughput: batched and single-event requests against a real server.

Starts `meterline serve` (SQLite, then PostgreSQL), and from this separate process
sends N events in batches of B over C concurrent connections, then single-event
requests; prints events/s and request latency p50/p99. In the same run it measures the
naive design (one ORM insert and commit per event) and prints the ratio.

    python benchmarks/ingest.py                      # 1,000,000 events, both databases
    python benchmarks/ingest.py --events 200000 --backends sqlite
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import orjson
from _support import fresh_database, percentile, serve, size

from meterline import migrations
from meterline.auth import onboarding
from meterline.db import Database
from meterline.ingestion.models import Event


def bodies(total: int, batch: int, prefix: str) -> list[bytes]:
    """Pre-serialised request bodies, so the load process spends its CPU on sending."""
    now = datetime.now(UTC)
    out = []
    for start in range(0, total, batch):
        events = [
            {
                "id": f"{prefix}-{i}",
                "type": "api_call",
                "customer": f"customer_{i % 1000}",
                "timestamp": (now - timedelta(seconds=i % 86_400)).isoformat(),
                "properties": {"endpoint": "/v1/search", "tokens": i % 500},
            }
            for i in range(start, min(start + batch, total))
        ]
        out.append(orjson.dumps({"events": events} if batch > 1 else events[0]))
    return out


def blast(
    base: str, key: str, payloads: list[bytes], concurrency: int
) -> tuple[float, list[float]]:
    """Send every payload over `concurrency` keep-alive connections; (seconds, latencies)."""
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(reversed(payloads))
    failures: list[str] = []

    def worker() -> None:
        with httpx.Client(
            base_url=base,
            timeout=120,
            headers={"Authorization": f"Bearer {key}", "content-type": "application/json"},
        ) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                started = time.perf_counter()
                r = client.post("/v1/events", content=body)
                elapsed = time.perf_counter() - started
                if r.status_code != 200 or r.json()["rejected"]:
                    failures.append(r.text[:200])
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return time.perf_counter() - started, latencies


def naive(database_url: str, total: int) -> float:
    """The design this replaces: one ORM insert and one commit per event."""
    db = Database(database_url)
    migrations.upgrade(db)
    with db.write() as session:
        workspace_id = onboarding.create_workspace(session, "naive").workspace.id
    now = datetime.now(UTC)
    started = time.perf_counter()
    for i in range(total):
        with db.write() as session:
            session.add(
                Event(
                    workspace_id=workspace_id,
                    event_id=f"naive-{i}",
                    event_type="api_call",
                    customer_id=1,
                    billing_customer_id=1,
                    subject=None,
                    timestamp=now,
                    received_at=now,
                    quantity=Decimal(1),
                    properties={"tokens": i % 500},
                    content_hash="x",
                )
            )
    elapsed = time.perf_counter() - started
    db.dispose()
    return total / elapsed


def run(backend: str, args: argparse.Namespace) -> dict[str, float]:
    with fresh_database(backend) as url, serve(url) as (base, key):
        auth = {"Authorization": f"Bearer {key}"}
        httpx.post(
            f"{base}/v1/meters",
            headers=auth,
            json={
                "key": "tokens",
                "event_type": "api_call",
                "aggregation": "sum",
                "value_property": "tokens",
            },
        ).raise_for_status()
        batched = bodies(args.events, args.batch, "b")
        seconds, latencies = blast(base, key, batched, args.concurrency)
        result = {
            "batched_events_per_s": args.events / seconds,
            "batch_p50_ms": percentile(latencies, 0.5) * 1000,
            "batch_p99_ms": percentile(latencies, 0.99) * 1000,
        }
        singles = bodies(args.single, 1, "s")
        seconds, latencies = blast(base, key, singles, args.concurrency)
        result |= {
            "single_requests_per_s": args.single / seconds,
            "single_p50_ms": percentile(latencies, 0.5) * 1000,
            "single_p99_ms": percentile(latencies, 0.99) * 1000,
        }
        check = httpx.get(f"{base}/v1/meters/tokens/usage", headers=auth).json()["data"]
        counted = sum(Decimal(row["value"]) for row in check)
        expected = sum(i % 500 for i in range(args.events)) + sum(
            i % 500 for i in range(args.single)
        )
        if counted != expected:
            raise RuntimeError(f"usage {counted} != sent {expected}")
    with fresh_database(backend) as url:
        result["naive_events_per_s"] = naive(url, args.naive)
    result["ratio"] = result["batched_events_per_s"] / result["naive_events_per_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=size(1_000_000, 3000))
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--single", type=int, default=size(20_000, 200))
    parser.add_argument("--naive", type=int, default=size(10_000, 100))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    print(
        f"ingest benchmark: {args.events:,} events in batches of {args.batch}, "
        f"{args.single:,} single-event requests, {args.concurrency} connections"
    )
    for backend in args.backends.split(","):
        r = run(backend, args)
        print(f"\n[{backend}]")
        print(
            f"  batched:  {r['batched_events_per_s']:>10,.0f} events/s   "
            f"request p50 {r['batch_p50_ms']:.1f} ms, p99 {r['batch_p99_ms']:.1f} ms"
        )
        print(
            f"  single:   {r['single_requests_per_s']:>10,.0f} requests/s "
            f"p50 {r['single_p50_ms']:.1f} ms, p99 {r['single_p99_ms']:.1f} ms"
        )
        print(
            f"  naive:    {r['naive_events_per_s']:>10,.0f} events/s   (ORM insert + commit each)"
        )
        print(f"  batched / naive: {r['ratio']:.1f}x")
        print("  usage totals match what was sent: yes")


if __name__ == "__main__":
    main()
