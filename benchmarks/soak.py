"""A soak: a steady mixed load against a real `meterline serve` for minutes on end. Every
interval it prints the server's memory, database connections, open files and the tail
latency; at the end, whether they stayed flat and whether everything acknowledged was
stored.

The load (``MIX``, per 20 requests; ``--rate`` is the total, settlements included):
9 consumes (``POST /v1/check``, consume true, a feature with day and month limits),
2 reservations (``POST /v1/reservations``, 100 tokens of a credit-priced feature) each
settled ``HOLD_SECONDS`` later (``POST /v1/reservations/{id}/settle``, 50 to 150 tokens:
2 settlements), 4 single events and 1 batch of ``BATCH_EVENTS`` events
(``POST /v1/events``), 2 reads (a customer's ``/usage`` and ``/entitlements`` in turn),
spread evenly over the customers. Open loop: each request is sent when it is due,
whatever the server's answers, over ``--connections`` kept-alive connections (raw
HTTP/1.1 on asyncio streams: no client object per request), and each latency runs from
the request's due time, so a server that falls behind shows it.

The default rate (``RATE``: 200 requests/s on SQLite, 100 on PostgreSQL) is a load one
`serve` process keeps up with on a 2-core machine shared with the database and this
generator, about half a core: the mix costs that process ~2.3 to 2.6 ms of CPU per
request on SQLite and ~4 to 5 ms on PostgreSQL (the cpu column below). At 400/s on SQLite
and 200/s on PostgreSQL the process was saturated (77 to 87 % of a core: one Python
process) and its queue grew for as long as the load ran: a soak then measures the queue,
not leaks.

Every interval (``--interval-seconds``, a minute by default) prints one line: the
requests due in it, their errors (non-2xx and refusals, by status), p50 and p99 over
all of them and p99 per kind, and the highest of the samples taken each second of the
server's resident memory (VmRSS, summed over the serve process and its children), its
open database connections (PostgreSQL: ``pg_stat_activity`` rows of the bench
database; SQLite: the processes' open files on the ``.db`` file, one per connection)
and its open files (sockets among them); and the CPU the serve processes used over the
interval (100: one core).

The verdict compares the first interval with the last. Flat means: RSS grew by at most
``RSS_GROWTH`` (10 %), database connections by at most ``CONNECTION_GROWTH`` (2), open
files by at most ``FD_GROWTH`` (10), and the last p99 is at most ``P99_FACTOR`` (1.5)
times the first plus ``P99_SLACK_MS`` (2 ms). Then correctness: no request failed, the
meters count every acknowledged consume, event and settled token, every customer's
credit balance is its grant less its settled tokens, and ``meterline credits verify``
passes. Exit status 1 when correctness fails, 2 when not flat (a quick run is too short
to judge flatness: its drift is printed, not judged; nor are its requests that failed
closed with 503 — the README test runs it on a machine busy with other tests — though
everything acknowledged must still be stored).

    python benchmarks/soak.py                                  # SQLite, 3 minutes
    python benchmarks/soak.py --backend postgres --minutes 30  # a real soak
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import subprocess
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from _support import (
    METERLINE,
    PG_SERVER,
    QUICK,
    fresh_database,
    percentile,
    process_tree,
    serve,
    size,
)
from sqlalchemy import make_url

# Requests per 20 of the load, by kind. Each hold is settled HOLD_SECONDS after it was
# due, so "settle" always equals "hold".
MIX = {"consume": 9, "hold": 2, "settle": 2, "event": 4, "batch": 1, "read": 2}
KINDS = tuple(MIX)
RATE = {"sqlite": 200, "postgres": 100}  # requests/s by default: about half a core here
HOLD_SECONDS = 1.0
HOLD_TOKENS = 100
BATCH_EVENTS = 50
GRANT = Decimal(10**9)  # credits per customer: never short during a soak
CUSTOMERS = size(100, 5)
SAMPLE_SECONDS = 0.5 if QUICK else 1.0
# Flat: the last interval against the first.
RSS_GROWTH = 0.10  # at most +10 % resident memory
CONNECTION_GROWTH = 2  # at most +2 database connections
FD_GROWTH = 10  # at most +10 open files (sockets included)
P99_FACTOR, P99_SLACK_MS = 1.5, 2.0  # last p99 ≤ 1.5 times the first + 2 ms

PLAN: dict[str, Any] = {
    "key": "soak",
    "name": "Soak",
    "currency": "USD",
    "features": {
        "question": {
            "limits": [
                {"window": "day", "max": "100000000", "enforcement": "hard"},
                {"window": "month", "max": "1000000000", "enforcement": "hard"},
            ]
        },
        "tokens": {  # reservations: the credits are held, then the settled tokens debited
            "credit_cost": {"per_unit": "1"},
            "limits": [{"window": "day", "max": "100000000000", "enforcement": "hard"}],
        },
    },
}
METERS = (
    {"key": "question", "event_type": "question", "aggregation": "count"},
    {"key": "tokens", "event_type": "tokens", "aggregation": "sum"},  # sums the quantity
    {"key": "api_call", "event_type": "api_call", "aggregation": "count"},
)


def cycle() -> list[str]:
    """The kinds sent by the schedule (settlements follow their holds), interleaved
    evenly: each kind's j-th slot of the cycle sits near (j + ½) / its weight."""
    slots = [
        ((j + 0.5) / weight, kind)
        for kind, weight in MIX.items()
        if kind != "settle"
        for j in range(weight)
    ]
    return [kind for _, kind in sorted(slots)]


# -- what was acknowledged, and what each interval saw -----------------------------------


@dataclass
class Acknowledged:
    consumes: int = 0  # allowed consumes (the question meter's count)
    events: int = 0  # accepted events, single and batched (the api_call meter's count)
    tokens: Decimal = Decimal(0)  # settled tokens (the tokens meter's sum; credits debited)
    holds_open: int = 0  # held and not settled yet


@dataclass
class Sample:
    rss_mib: float
    connections: int
    fds: int
    sockets: int
    cpu_seconds: float = 0.0  # user + system so far, the serve processes together
    at: float = 0.0  # when (time.monotonic, the event loop's clock)


@dataclass
class Interval:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: Counter[str] = field(default_factory=Counter)
    done: int = 0
    pending: int = 0
    samples: list[Sample] = field(default_factory=list)


@dataclass
class Summary:
    p99_ms: float
    peak: Sample


# -- the server, seen from /proc ---------------------------------------------------------


class Monitor:
    """Samples a serve process (and its children) and its database connections."""

    def __init__(self, pid: int, database_url: str, backend: str) -> None:
        self.pid = pid
        self.backend = backend
        self.db_file = ""
        self.database = ""
        self.pg: psycopg.AsyncConnection[Any] | None = None
        if backend == "sqlite":
            self.db_file = os.path.realpath(database_url.removeprefix("sqlite:///"))
        else:
            self.database = make_url(database_url).database or ""

    async def open(self) -> None:
        if self.backend == "postgres":
            admin = make_url(PG_SERVER).set(drivername="postgresql")
            self.pg = await psycopg.AsyncConnection.connect(
                admin.render_as_string(hide_password=False), autocommit=True
            )

    async def close(self) -> None:
        if self.pg is not None:
            await self.pg.close()

    async def sample(self) -> Sample:
        rss_kib = fds = sockets = on_db_file = ticks = 0
        for pid in process_tree(self.pid):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                ticks += sum(int(n) for n in stat[stat.rindex(")") + 2 :].split()[11:13])
                status = Path(f"/proc/{pid}/status").read_text()
                rss_kib += next(
                    int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:"
                )
                folder = f"/proc/{pid}/fd"
                for fd in os.listdir(folder):
                    try:
                        target = os.readlink(f"{folder}/{fd}")
                    except FileNotFoundError:
                        continue  # closed meanwhile
                    fds += 1
                    sockets += target.startswith("socket:")
                    on_db_file += target == self.db_file
            except (FileNotFoundError, StopIteration):
                continue  # the process ended meanwhile
        connections = on_db_file
        if self.pg is not None:
            row = await (
                await self.pg.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,)
                )
            ).fetchone()
            connections = int(row[0]) if row else 0
        cpu = ticks / os.sysconf("SC_CLK_TCK")
        return Sample(rss_kib / 1024, connections, fds, sockets, cpu, time.monotonic())


# -- raw HTTP/1.1 over kept-alive connections ----------------------------------------------


class TransportError(Exception):
    pass


class Connection:
    """One kept-alive connection, opened again after a failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(60):
                if self.streams is None:
                    self.streams = await asyncio.open_connection(self.host, self.port)
                reader, writer = self.streams
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length, closing = 0, False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                    elif name.lower() == b"connection":
                        closing = value.strip().lower() == b"close"  # answered, then closed
                body = await reader.readexactly(length)
                if closing:
                    self.close()
                return status, body
        except (OSError, EOFError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            self.close()
            raise TransportError(type(exc).__name__) from exc

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


class Http:
    def __init__(self, base: str, key: str) -> None:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.prefix = f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"

    def request(self, method: str, path: str, body: Any = None) -> bytes:
        if body is None:
            return f"{method} {path} HTTP/1.1\r\n{self.prefix}\r\n".encode()
        payload = orjson.dumps(body)
        head = (
            f"{method} {path} HTTP/1.1\r\n{self.prefix}Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload


# -- the load ------------------------------------------------------------------------------


class Soak:
    def __init__(
        self, http: Http, monitor: Monitor, args: argparse.Namespace, ack: Acknowledged
    ) -> None:
        self.http = http
        self.monitor = monitor
        self.rate: float = args.rate
        self.seconds: float = args.minutes * 60
        self.interval: float = args.interval_seconds
        self.count: int = max(1, math.ceil(self.seconds / self.interval - 1e-9))
        self.intervals = [Interval() for _ in range(self.count)]
        self.ack = ack
        self.run = uuid.uuid4().hex[:8]
        self.idle: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(args.connections):
            self.idle.put_nowait(Connection(http.host, http.port))
        self.start = 0.0
        self.horizon = 0.0  # every request due before this has been started
        self.tasks: set[asyncio.Task[None]] = set()
        self.summaries: list[Summary] = []
        self.previous = Sample(0.0, 0, 0, 0)  # the sample before the interval (its CPU)
        self.sent = {kind: itertools.count() for kind in KINDS}

    def customer(self, kind: str) -> str:
        """The next customer for a kind of request: each kind goes round all of them."""
        return f"c{next(self.sent[kind]) % CUSTOMERS}"

    def index(self, moment: float) -> int:
        """The interval a moment (a due time) falls in: before the start the first,
        after the end the last."""
        return max(0, min(self.count - 1, int((moment - self.start) // self.interval)))

    async def send(
        self, kind: str, due: float, request: bytes, judge: Callable[[int, bytes], str | None]
    ) -> None:
        """Send one request when due; ``judge`` says what went wrong with its answer
        (None: nothing), and books what was acknowledged."""
        loop = asyncio.get_running_loop()
        interval = self.intervals[self.index(due)]
        connection = await self.idle.get()
        try:
            status, body = await connection.exchange(request)
        except TransportError as exc:
            interval.errors[f"transport ({exc})"] += 1
        else:
            interval.latencies[kind].append(loop.time() - due)
            if not 200 <= status < 300:
                interval.errors[f"{kind} {status}"] += 1
            else:
                problem = judge(status, body)
                if problem is not None:
                    interval.errors[f"{kind} {problem}"] += 1
        finally:
            self.idle.put_nowait(connection)
            interval.done += 1

    def launch(self, due: float, coroutine: Any) -> None:
        """Start a request's task; its interval waits for it (and counts it as pending
        from now, so a report cannot pass it before it has started)."""
        interval = self.intervals[self.index(due)]
        interval.pending += 1

        def finished(task: asyncio.Task[None]) -> None:
            self.tasks.discard(task)
            interval.pending -= 1

        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(finished)

    def consume(self, n: int, due: float) -> None:
        body = {
            "customer": self.customer("consume"),
            "feature": "question",
            "consume": True,
            "id": f"{self.run}-q{n}",
        }

        def judge(status: int, answer: bytes) -> str | None:
            if b'"allowed":true' not in answer:
                return "denied"
            self.ack.consumes += 1
            return None

        self.launch(
            due, self.send("consume", due, self.http.request("POST", "/v1/check", body), judge)
        )

    def hold(self, n: int, due: float) -> asyncio.Future[str | None]:
        held: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        body = {
            "customer": self.customer("hold"),
            "feature": "tokens",
            "quantity": str(HOLD_TOKENS),
            "ttl_seconds": 300,
        }

        def judge(status: int, answer: bytes) -> str | None:
            reservation = orjson.loads(answer)
            if not reservation["allowed"]:
                return "denied"
            held.set_result(reservation["id"])
            self.ack.holds_open += 1
            return None

        async def hold_it() -> None:
            try:
                await self.send(
                    "hold", due, self.http.request("POST", "/v1/reservations", body), judge
                )
            finally:
                if not held.done():
                    held.set_result(None)  # failed: nothing to settle

        self.launch(due, hold_it())
        return held

    def settle(self, n: int, due: float, held: asyncio.Future[str | None]) -> None:
        quantity = Decimal(50 + n % 101)

        async def settle_it() -> None:
            reservation = await held
            if reservation is None:
                return  # the hold failed (counted there)

            def judge(status: int, answer: bytes) -> str | None:
                if orjson.loads(answer)["event_id"] is None:
                    return "unrecorded"
                self.ack.tokens += quantity
                self.ack.holds_open -= 1
                return None

            path = f"/v1/reservations/{reservation}/settle"
            request = self.http.request("POST", path, {"quantity": str(quantity)})
            await self.send("settle", due, request, judge)

        self.launch(due, settle_it())

    def events(self, n: int, due: float, count: int) -> None:
        kind = "event" if count == 1 else "batch"
        events = [
            {"id": f"{self.run}-e{n}-{i}", "type": "api_call", "customer": self.customer(kind)}
            for i in range(count)
        ]
        body: Any = events[0] if count == 1 else {"events": events}

        def judge(status: int, answer: bytes) -> str | None:
            accepted = orjson.loads(answer)["accepted"]
            self.ack.events += accepted
            return None if accepted == count else "not all accepted"

        self.launch(due, self.send(kind, due, self.http.request("POST", "/v1/events", body), judge))

    def read(self, due: float) -> None:
        """A customer's usage or entitlements, in turn (each customer gets both)."""
        n = next(self.sent["read"])
        what = ("usage", "entitlements")[(n + n // CUSTOMERS) % 2]
        path = f"/v1/customers/c{n % CUSTOMERS}/{what}"
        self.launch(due, self.send("read", due, self.http.request("GET", path), lambda s, b: None))

    async def schedule(self) -> None:
        """Every request at its due time: the cycle's kinds evenly at ``rate`` less the
        settlements, and each settlement HOLD_SECONDS after its hold. A hold whose
        settlement would fall after the end is not made."""
        loop = asyncio.get_running_loop()
        kinds = cycle()
        base_rate = self.rate * (1 - MIX["settle"] / sum(MIX.values()))
        total = int(base_rate * self.seconds)
        end = self.start + self.seconds
        settles: deque[tuple[float, int, asyncio.Future[str | None]]] = deque()
        for n in itertools.count():
            next_base = self.start + n / base_rate if n < total else math.inf
            while settles and settles[0][0] <= next_base:
                due, number, held = settles.popleft()
                await self._until(loop, due)
                self.settle(number, due, held)
            if n >= total:
                break
            due = next_base
            await self._until(loop, due)
            kind = kinds[n % len(kinds)]
            if kind == "consume":
                self.consume(n, due)
            elif kind == "hold":
                if due + HOLD_SECONDS < end:
                    settles.append((due + HOLD_SECONDS, n, self.hold(n, due)))
            elif kind == "event":
                self.events(n, due, 1)
            elif kind == "batch":
                self.events(n, due, BATCH_EVENTS)
            elif kind == "read":
                self.read(due)
            else:
                raise ValueError(kind)
        self.horizon = math.inf

    async def _until(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self.horizon = due

    async def sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            found = await self.monitor.sample()
            self.intervals[self.index(loop.time())].samples.append(found)
            await asyncio.sleep(SAMPLE_SECONDS)

    async def report(self, scheduler: asyncio.Task[None]) -> None:
        """One line per interval, once every request due in it has been answered."""
        for number, interval in enumerate(self.intervals):
            until = min(self.seconds, (number + 1) * self.interval)
            deadline = self.start + until + 120
            loop = asyncio.get_running_loop()
            while self.horizon < self.start + until or interval.pending:
                if scheduler.done() and scheduler.exception() is not None:
                    await scheduler  # raises
                if loop.time() > deadline:
                    interval.errors["unanswered after 120 s"] += interval.pending
                    break
                await asyncio.sleep(0.01)
            if not interval.samples:
                interval.samples.append(await self.monitor.sample())
            print(self.line(until, interval), flush=True)
            # A 30-minute soak keeps only the summaries.
            interval.latencies = {kind: [] for kind in KINDS}

    def line(self, until: float, interval: Interval) -> str:
        every = [t for kind in KINDS for t in interval.latencies[kind]]
        p99 = percentile(every, 0.99) * 1000
        peak = Sample(
            max(s.rss_mib for s in interval.samples),
            max(s.connections for s in interval.samples),
            max(s.fds for s in interval.samples),
            max(s.sockets for s in interval.samples),
        )
        self.summaries.append(Summary(p99, peak))
        latest = interval.samples[-1]
        busy = latest.cpu_seconds - self.previous.cpu_seconds
        cpu = busy / max(1e-9, latest.at - self.previous.at) * 100
        self.previous = latest
        kinds = "".join(f"{percentile(interval.latencies[k], 0.99) * 1000:>8.1f}" for k in KINDS)
        errors = sum(interval.errors.values())
        line = (
            f"{int(until) // 60:>3}:{int(until) % 60:02d}{interval.done:>10,}{errors:>8,}"
            f"{percentile(every, 0.5) * 1000:>8.1f}{p99:>8.1f}{kinds}{cpu:>7.0f}"
            f"{peak.rss_mib:>9.1f}{peak.connections:>6}{peak.fds:>6}{peak.sockets:>6}"
        )
        if errors:
            line += "   " + ", ".join(f"{what}: {n}" for what, n in interval.errors.most_common())
        return line

    async def main(self) -> None:
        await self.monitor.open()
        self.previous = await self.monitor.sample()
        loop = asyncio.get_running_loop()
        self.start = loop.time() + 0.2
        print(
            f"{'at':>6}{'requests':>10}{'errors':>8}{'p50':>8}{'p99':>8}"
            + "".join(f"{k:>8}" for k in KINDS)
            + f"{'cpu %':>7}{'RSS MiB':>9}{'db':>6}{'fds':>6}{'socks':>6}"
        )
        print(
            f"{'m:ss':>6}{'':>18}{'ms, all':>16}{'p99 ms per kind':>48}{'server':>7}"
            f"{'(highest sample)':>27}",
            flush=True,
        )
        sampler = asyncio.create_task(self.sample())
        scheduler = asyncio.create_task(self.schedule())
        try:
            await self.report(scheduler)
            await scheduler
            while self.tasks:
                await asyncio.gather(*list(self.tasks))
        finally:
            sampler.cancel()
            while not self.idle.empty():
                self.idle.get_nowait().close()
            await self.monitor.close()


# -- setup, verdict, correctness -----------------------------------------------------------


def set_up(admin: httpx.Client, ack: Acknowledged) -> None:
    """Meters, the plan, customers with subscriptions and credits; then each customer
    consumes, holds and settles once (their counters made, not timed)."""
    for meter in METERS:
        admin.post("/v1/meters", json=meter).raise_for_status()
    admin.post("/v1/plans", json=PLAN).raise_for_status()
    for i in range(CUSTOMERS):
        customer = f"c{i}"
        admin.post("/v1/customers", json={"external_id": customer}).raise_for_status()
        subscription = {"customer": customer, "plan": "soak"}
        admin.post("/v1/subscriptions", json=subscription).raise_for_status()
        grant = {"amount": str(GRANT), "description": "soak"}
        admin.post(f"/v1/customers/{customer}/credits/grants", json=grant).raise_for_status()
    for i in range(CUSTOMERS):
        check = {"customer": f"c{i}", "feature": "question", "consume": True}
        if admin.post("/v1/check", json=check).raise_for_status().json()["allowed"]:
            ack.consumes += 1
        hold = {"customer": f"c{i}", "feature": "tokens", "quantity": "1"}
        held = admin.post("/v1/reservations", json=hold).raise_for_status().json()["id"]
        admin.post(f"/v1/reservations/{held}/settle", json={"quantity": "1"}).raise_for_status()
        ack.tokens += 1


def verdict(first: Summary, last: Summary) -> tuple[str, list[str]]:
    """The drift between two intervals, and what broke flatness (empty: flat)."""
    a, b = first.peak, last.peak
    rss = b.rss_mib - a.rss_mib
    drift = (
        f"RSS {a.rss_mib:.1f} → {b.rss_mib:.1f} MiB ({rss:+.1f}, {rss / a.rss_mib:+.1%}), "
        f"database connections {a.connections} → {b.connections}, "
        f"open files {a.fds} → {b.fds}, p99 {first.p99_ms:.1f} → {last.p99_ms:.1f} ms"
    )
    broken = []
    if rss > RSS_GROWTH * a.rss_mib:
        broken.append(f"RSS grew {rss / a.rss_mib:.1%} (at most {RSS_GROWTH:.0%})")
    if b.connections - a.connections > CONNECTION_GROWTH:
        broken.append(
            f"database connections +{b.connections - a.connections} (at most +{CONNECTION_GROWTH})"
        )
    if b.fds - a.fds > FD_GROWTH:
        broken.append(f"open files +{b.fds - a.fds} (at most +{FD_GROWTH})")
    if last.p99_ms > P99_FACTOR * first.p99_ms + P99_SLACK_MS:
        broken.append(
            f"p99 {last.p99_ms:.1f} ms > {P99_FACTOR} times {first.p99_ms:.1f} "
            f"+ {P99_SLACK_MS:.0f} ms"
        )
    return drift, broken


def meter_total(admin: httpx.Client, key: str) -> Decimal:
    """The meter's value over every customer, the last 30 days (the API's default)."""
    rows = admin.get(f"/v1/meters/{key}/usage").raise_for_status().json()["data"]
    return sum((Decimal(row["value"]) for row in rows), Decimal(0))


def correctness(admin: httpx.Client, ack: Acknowledged, database_url: str) -> list[str]:
    """What the server stored, against what it acknowledged (empty: all of it)."""
    wrong = []
    for key, expected, what in (
        ("question", Decimal(ack.consumes), "allowed consumes"),
        ("api_call", Decimal(ack.events), "accepted events"),
        ("tokens", ack.tokens, "settled tokens"),
    ):
        stored = meter_total(admin, key)
        print(f"  {key}: {stored:,} stored, {expected:,} {what} acknowledged")
        if stored != expected:
            wrong.append(f"meter {key}: {stored} stored, {expected} acknowledged")
    balance = sum(
        (
            Decimal(admin.get(f"/v1/customers/c{i}/credits").raise_for_status().json()["balance"])
            for i in range(CUSTOMERS)
        ),
        Decimal(0),
    )
    expected = CUSTOMERS * GRANT - ack.tokens
    print(f"  credits: {balance:,} left, {expected:,} granted less settled")
    if balance != expected:
        wrong.append(f"credit balances {balance}, expected {expected}")
    verified = subprocess.run(
        [METERLINE, "credits", "verify", "--database-url", database_url],
        capture_output=True,
        text=True,
    )
    print(f"  meterline credits verify: exit {verified.returncode}")
    if verified.returncode != 0:
        wrong.append("meterline credits verify: " + (verified.stdout + verified.stderr)[-500:])
    return wrong


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--minutes", type=float, default=size(180, 6) / 60, help="length of the load (default 3)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="requests per second, all kinds (default: 200 on SQLite, 100 on PostgreSQL)",
    )
    parser.add_argument(
        "--interval-seconds",
        type=float,
        default=size(60, 2),
        help="the reporting period (default 60: a line a minute)",
    )
    parser.add_argument("--connections", type=int, default=64, help="kept-alive connections")
    parser.add_argument("--workers", type=int, default=1, help="`meterline serve` processes")
    args = parser.parse_args()
    if args.rate is None:
        args.rate = size(RATE[args.backend], 100)
    mix = ", ".join(f"{n} {kind}" for kind, n in MIX.items())
    print(
        f"soak — {args.backend}: {args.rate:,.0f} requests/s for {args.minutes:g} min, "
        f"{CUSTOMERS} customers; per 20 requests: {mix} (batches of {BATCH_EVENTS}); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    ack = Acknowledged()
    with fresh_database(args.backend) as url, serve(url, workers=args.workers) as server:
        headers = {"Authorization": f"Bearer {server.key}"}
        with httpx.Client(base_url=server.base, headers=headers, timeout=60) as admin:
            set_up(admin, ack)
            # The new subscriptions' first billing-cycle jobs run in a burst: steady state
            # is after it (benchmarks/check.py waits the same).
            time.sleep(size(8, 0))
            soak = Soak(
                Http(server.base, server.key), Monitor(server.pid, url, args.backend), args, ack
            )
            started, cpu = time.monotonic(), time.process_time()
            asyncio.run(soak.main())
            generator = (time.process_time() - cpu) / (time.monotonic() - started)
            errors = sum(sum(i.errors.values()) for i in soak.intervals)
            requests = sum(i.done for i in soak.intervals)
            print(
                f"\n{requests:,} requests, {errors:,} errors; the load generator used "
                f"{generator:.0%} of a core"
            )
            broken: list[str] = []
            if len(soak.summaries) >= 2:
                drift, broken = verdict(soak.summaries[0], soak.summaries[-1])
                if QUICK:
                    print(f"drift, first interval → last: {drift} (quick run: not judged)")
                    broken = []
                else:
                    judged = "flat" if not broken else "NOT flat: " + "; ".join(broken)
                    print(f"drift, first interval → last: {drift}: {judged}")
            else:
                print("one interval only: no drift to judge")
            print("stored, through the API:")
            wrong = correctness(admin, ack, url)
    # A quick run (the README test, on a machine busy with other tests) may overload the
    # server: decisions then fail closed (503) and their holds stay open. Printed, not
    # judged; what was acknowledged must still be stored.
    overloaded = QUICK and errors > 0 and _only_fail_closed(soak.intervals)
    if errors:
        note = " (503 fail-closed under load, quick run: not judged)" if overloaded else ""
        print(f"  {errors} requests failed{note}")
        if not overloaded:
            wrong.insert(0, f"{errors} requests failed")
    if ack.holds_open and not overloaded:
        wrong.append(f"{ack.holds_open} holds acknowledged but not settled")
    fine = "correct: every acknowledged request stored" + ("" if errors else ", no errors")
    print(fine if not wrong else "NOT correct:")
    for line in wrong:
        print(f"  {line}")
    sys.exit(1 if wrong else 2 if broken else 0)


def _only_fail_closed(intervals: list[Interval]) -> bool:
    """Every failed request was a 503 (a decision failed closed, ingestion unavailable)."""
    return all(what.endswith(" 503") for i in intervals for what in i.errors)


if __name__ == "__main__":
    main()
