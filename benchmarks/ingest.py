"""Ingestion throughput: batched and single-event requests against a real server.

For each database (SQLite, then PostgreSQL) this one run prints, side by side:

- HTTP batches of 1,000 events with random UUID ids (durable: acknowledged after the
  commit; SQLite ``synchronous=FULL``, the default), sent over C connections from this
  process, to one ``meterline serve`` with its defaults: events/s overall, for the first
  and the last tenth of the load (flat as the table grows?), request p50/p99;
- the raw floor: the same rows written straight into the same ``events`` table by the
  driver alone (``sqlite3`` executemany in transactions of 1,000; psycopg ``COPY``),
  with no validation, meters, rollups or HTTP — what the database itself does;
- the naive design: one ORM insert and one commit per event;
- single-event requests measured with ``wrk`` (a Lua script gives each request a unique
  id) beside the same server's ``GET /healthz`` rate in the same run, and wrk's own
  ceiling against a static responder;
- the peak RSS of the server process after the load.

    python benchmarks/ingest.py                      # 1,000,000 events, both databases
    python benchmarks/ingest.py --events 200000 --backends sqlite
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import psycopg
from _load import wrk, wrk_posts
from _support import free_port, fresh_database, percentile, serve, size

from meterline import migrations
from meterline.auth import onboarding
from meterline.db import Database
from meterline.ingestion import store
from meterline.ingestion.models import Event


def events(total: int, start: int = 0) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [
        {
            "id": str(uuid.uuid4()),
            "type": "api_call",
            "customer": f"customer_{i % 1000}",
            "timestamp": (now - timedelta(seconds=i % 86_400)).isoformat(),
            "properties": {"endpoint": "/v1/search", "tokens": i % 500},
        }
        for i in range(start, start + total)
    ]


def bodies(total: int, batch: int) -> list[bytes]:
    """Pre-serialised request bodies, so the load process spends its CPU on sending."""
    return [
        orjson.dumps({"events": events(min(batch, total - start), start)})
        for start in range(0, total, batch)
    ]


def blast(
    base: str, key: str, payloads: list[bytes], concurrency: int
) -> tuple[float, list[float], list[float]]:
    """Send every payload over ``concurrency`` keep-alive connections; (seconds, request
    latencies, completion times since the start, in order)."""
    latencies: list[float] = []
    done: list[float] = []
    lock = threading.Lock()
    queue = list(reversed(payloads))
    failures: list[str] = []
    started = time.perf_counter()

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
                sent = time.perf_counter()
                r = client.post("/v1/events", content=body)
                finished = time.perf_counter()
                if r.status_code != 200 or r.json()["rejected"]:
                    failures.append(r.text[:200])
                with lock:
                    latencies.append(finished - sent)
                    done.append(finished - started)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return time.perf_counter() - started, latencies, sorted(done)


def tenth_rates(done: list[float], per_request: int) -> tuple[float, float]:
    """Events/s over the first and the last tenth of the requests."""
    n = max(1, len(done) // 10)
    first = n * per_request / done[n - 1]
    last = n * per_request / max(1e-9, done[-1] - done[-n - 1]) if len(done) > n else first
    return first, last


def rss_mib(pid: int) -> float:
    """Peak resident set of a process (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def server_pid(port: str) -> int | None:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "meterline serve" in line and f"--port {port}" in line:
            return int(line.split()[0])
    return None


# -- the raw floor ------------------------------------------------------------------------


def raw_rows(total: int, workspace_id: int) -> list[tuple[object, ...]]:
    now = datetime.now(UTC)
    return [
        (
            workspace_id,
            str(uuid.uuid4()),
            "api_call",
            1 + i % 1000,
            1 + i % 1000,
            None,
            now - timedelta(seconds=i % 86_400),
            now,
            "1",
            orjson.dumps({"endpoint": "/v1/search", "tokens": i % 500}).decode(),
            uuid.uuid4().hex,
        )
        for i in range(total)
    ]


def floor(backend: str, total: int, batch: int) -> float:
    """The same rows into the same (migrated) events table by the driver alone."""
    with fresh_database(backend) as url:
        db = Database(url)
        migrations.upgrade(db)
        with db.write() as session:
            workspace_id = onboarding.create_workspace(session, "floor").workspace.id
        db.dispose()
        rows = raw_rows(total, workspace_id)
        names = ", ".join(name for name, _ in store.COLUMNS)
        if backend == "sqlite":
            conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            text = [
                (
                    *r[:6],
                    r[6].strftime("%Y-%m-%d %H:%M:%S.%f"),
                    r[7].strftime("%Y-%m-%d %H:%M:%S.%f"),
                    *r[8:],
                )  # type: ignore[attr-defined]
                for r in rows
            ]
            marks = ", ".join("?" * len(store.COLUMNS))
            sql = f"INSERT INTO events ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"
            started = time.perf_counter()
            for start in range(0, total, batch):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql, text[start : start + batch])
                conn.execute("COMMIT")
            elapsed = time.perf_counter() - started
            conn.close()
        else:
            with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
                started = time.perf_counter()
                for start in range(0, total, batch):
                    with (
                        conn.transaction(),
                        conn.cursor().copy(f"COPY events ({names}) FROM STDIN") as copy,
                    ):
                        for row in rows[start : start + batch]:
                            copy.write_row(row)
                elapsed = time.perf_counter() - started
    return total / elapsed


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
                    event_id=str(uuid.uuid4()),
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


# -- single requests with wrk ------------------------------------------------------------


def static_responder() -> tuple[str, subprocess.Popen[bytes]]:
    """A process answering every request with a fixed 200 (asyncio, no framework):
    what wrk itself can drive on this machine, an upper bound for any server here."""
    port = free_port()
    code = f"""
import asyncio
R = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nContent-Type: application/json\\r\\n\\r\\n{{}}"
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, d): self.t.write(R * d.count(b"\\r\\n\\r\\n"))
async def main():
    s = await asyncio.get_running_loop().create_server(P, "127.0.0.1", {port})
    await s.serve_forever()
asyncio.run(main())
"""
    process = subprocess.Popen([sys.executable, "-c", code])
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(base, timeout=0.5)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return base, process


def run(backend: str, args: argparse.Namespace) -> dict[str, float]:
    result: dict[str, float] = {}
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
        seconds, latencies, done = blast(
            base, key, bodies(args.events, args.batch), args.concurrency
        )
        first, last = tenth_rates(done, args.batch)
        result |= {
            "batched_events_per_s": args.events / seconds,
            "first_tenth": first,
            "last_tenth": last,
            "batch_p50_ms": percentile(latencies, 0.5) * 1000,
            "batch_p99_ms": percentile(latencies, 0.99) * 1000,
        }
        check = httpx.get(f"{base}/v1/meters/tokens/usage", headers=auth).json()["data"]
        counted = sum(Decimal(row["value"]) for row in check)
        expected = sum(i % 500 for i in range(args.events))
        if counted != expected:
            raise RuntimeError(f"usage {counted} != sent {expected}")
        if args.wrk_seconds > 0 and shutil.which("wrk"):
            script = wrk_posts(
                "/v1/events",
                key,
                '{"id":"%s-%d","type":"api_call","customer":"customer_%d",'
                '"properties":{"tokens":%d}}',
                "counter % 1000, counter % 500",
            )
            single = wrk(f"{base}/v1/events", args.wrk_seconds, args.wrk_connections, script)
            health = wrk(f"{base}/healthz", args.wrk_seconds, args.wrk_connections)
            if single.bad:
                raise RuntimeError(f"{single.bad} single-event requests failed")
            result |= {
                "single_per_s": single.rate,
                "single_p99_ms": single.p99_ms,
                "healthz_per_s": health.rate,
                "healthz_p99_ms": health.p99_ms,
            }
        pid = server_pid(base.rsplit(":", 1)[1])
        result["rss_mib"] = rss_mib(pid) if pid else float("nan")
    result["floor_events_per_s"] = floor(backend, args.floor, args.batch)
    with fresh_database(backend) as url:
        result["naive_events_per_s"] = naive(url, args.naive)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=size(1_000_000, 3000))
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--floor", type=int, default=size(200_000, 2000))
    parser.add_argument("--naive", type=int, default=size(10_000, 100))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--wrk-seconds", type=int, default=size(10, 1))
    parser.add_argument("--wrk-connections", type=int, default=16)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    print(
        f"ingest benchmark: {args.events:,} events in HTTP batches of {args.batch} over "
        f"{args.concurrency} connections; single events with wrk for {args.wrk_seconds} s "
        f"over {args.wrk_connections} connections; load average {os.getloadavg()[0]:.1f}"
    )
    ceiling = None
    if args.wrk_seconds > 0 and shutil.which("wrk"):
        base, process = static_responder()
        try:
            ceiling = wrk(base + "/", args.wrk_seconds, args.wrk_connections).rate
        finally:
            process.terminate()
    for backend in args.backends.split(","):
        r = run(backend, args)
        floor_ = r["floor_events_per_s"]
        batched = r["batched_events_per_s"]
        print(f"\n[{backend}]")
        print(
            f"  batched HTTP:   {batched:>10,.0f} events/s   request p50 "
            f"{r['batch_p50_ms']:.1f} ms, p99 {r['batch_p99_ms']:.1f} ms; first tenth "
            f"{r['first_tenth']:,.0f}/s, last tenth {r['last_tenth']:,.0f}/s"
        )
        print(
            f"  raw floor:      {floor_:>10,.0f} events/s   (driver alone into the same "
            f"table); batched / floor {batched / floor_:.2f}"
        )
        print(
            f"  naive:          {r['naive_events_per_s']:>10,.0f} events/s   (ORM insert + "
            f"commit each); batched / naive {batched / r['naive_events_per_s']:.1f}x"
        )
        if "single_per_s" in r:
            print(
                f"  single (wrk):   {r['single_per_s']:>10,.0f} requests/s p99 "
                f"{r['single_p99_ms']:.1f} ms; GET /healthz {r['healthz_per_s']:,.0f}/s "
                f"(p99 {r['healthz_p99_ms']:.1f} ms): "
                f"{r['single_per_s'] / r['healthz_per_s']:.0%} of it"
            )
        print(f"  server peak RSS: {r['rss_mib']:.0f} MiB")
        print("  usage totals match what was sent: yes")
    if ceiling is not None:
        print(f"\nwrk's own ceiling here (static asyncio responder): {ceiling:,.0f} requests/s")


if __name__ == "__main__":
    main()
