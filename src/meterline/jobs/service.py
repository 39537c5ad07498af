"""Background work from the ``jobs`` outbox (SPEC §6). Knows no domain: the work is a
``Registry`` of handlers by kind, filled in by ``jobs.registry``.

- ``schedule`` writes a job in the caller's transaction (so a crash loses nothing:
  the change and the work it needs commit together).
- ``Runner.run_due`` leases due jobs (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so any
  number of workers take different rows; SQLite: its single writer), then runs them.
  Each work job runs in a write transaction of its own: a job's effects and the
  deletion or rescheduling of its row commit together, a failing job rolls back alone
  and is retried with exponential backoff. A worker that dies mid-batch loses its
  lease after ``LEASE``; its jobs then run again (their effects are idempotent too).
- Maintenance jobs (sweeps that run their own transactions) are rows as well, leased
  the same way, so one worker runs each per interval however many there are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from meterline.db import Database
from meterline.jobs.models import Job
from meterline.kit import rawsql
from meterline.kit.time import utc_now

log = logging.getLogger("meterline")

LEASE = timedelta(minutes=5)
BATCH = 25  # jobs per lease and transaction: small enough that workers share the work
MAX_BACKOFF_SECONDS = 3600
MAX_ROUNDS = 10_000  # batches per drain, a bound in case a job keeps itself due


@dataclass(frozen=True)
class Claimed:
    id: int
    key: str
    kind: str
    workspace_id: int | None
    payload: dict[str, Any]
    attempts: int
    leased_until: datetime


# A work handler runs inside the batch's transaction and returns when it is next due
# (None: done, the row goes). ``scratch`` lives for its transaction (rows read ahead, caches).
WorkHandler = Callable[[Session, Claimed, datetime, dict[Any, Any]], datetime | None]
MaintenanceHandler = Callable[[Database, datetime], object]
# An I/O handler waits on something outside the database (a webhook receiver): it runs
# outside any transaction, writes what it must in its own, and says when it is next due.
IoHandler = Callable[[Database, Claimed, datetime], datetime | None]
IO_THREADS = 8
# A pause after each database-reading I/O job: a server process's request threads get the
# interpreter between them, so a burst of background work never stalls requests.
YIELD_SECONDS = 0.001


@dataclass
class Registry:
    work: dict[str, WorkHandler] = field(default_factory=dict)
    io: dict[str, IoHandler] = field(default_factory=dict)
    # I/O kinds that wait on the network, run IO_THREADS at a time; the others (reads of
    # the database) one after another, so a busy server process keeps its CPU.
    parallel: set[str] = field(default_factory=set)
    # name → (interval in seconds, handler)
    maintenance: dict[str, tuple[float, MaintenanceHandler]] = field(default_factory=dict)


# What writing a job whose key is already waiting does to it.
_ON_CONFLICT = {
    "move": "DO UPDATE SET run_at = excluded.run_at",  # runs at the new time, once
    "sooner": "DO UPDATE SET run_at = excluded.run_at WHERE excluded.run_at < jobs.run_at",
    "keep": "DO NOTHING",
}


def schedule_many(
    session: Session,
    kind: str,
    payloads: Mapping[str, dict[str, Any]],
    run_at: datetime,
    *,
    workspace_id: int | None = None,
    existing: Literal["move", "sooner", "keep"] = "move",
) -> None:
    """Have a ``kind`` job per key (key → payload) run at ``run_at``, written in this
    transaction in one statement. A job with the key already waiting is moved to
    ``run_at`` (``move``), moved only if that is sooner (``sooner``: no write when it is
    due by then anyway), or left as it is (``keep``)."""
    if not payloads:
        return
    d = rawsql.driver(session)
    row = f"({', '.join([d.mark] * 7)})"
    now = d.timestamp(utc_now())
    rawsql.run(
        session,
        "INSERT INTO jobs (key, kind, workspace_id, payload, run_at, attempts, created_at) "
        f"VALUES {', '.join([row] * len(payloads))} ON CONFLICT (key) {_ON_CONFLICT[existing]}",
        [
            value
            for key, payload in payloads.items()
            for value in (key, kind, workspace_id, d.json(payload), d.timestamp(run_at), 0, now)
        ],
    )


def schedule(
    session: Session,
    kind: str,
    key: str,
    run_at: datetime,
    *,
    workspace_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Have ``kind`` run at ``run_at`` (in this transaction). A job with ``key`` already
    waiting is moved to ``run_at`` (and runs once)."""
    schedule_many(session, kind, {key: payload or {}}, run_at, workspace_id=workspace_id)


def pending(session: Session, kind: str | None = None) -> list[Job]:
    """Jobs waiting (for tests and the CLI), soonest first."""
    query = select(Job).order_by(Job.run_at, Job.id)
    if kind is not None:
        query = query.where(Job.kind == kind)
    return list(session.scalars(query))


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(MAX_BACKOFF_SECONDS, 5 * 2 ** max(0, attempts - 1)))


class Runner:
    """Runs due jobs of a ``Registry`` against one database."""

    def __init__(self, db: Database, registry: Registry, *, batch: int = BATCH) -> None:
        self.db = db
        self.registry = registry
        self.batch = batch

    def ensure_maintenance(self, now: datetime | None = None) -> None:
        """Write the maintenance jobs' rows (once; any process may)."""
        now = now or utc_now()
        with self.db.write() as session:
            for name in self.registry.maintenance:
                schedule_many(session, name, {f"maintenance:{name}": {}}, now, existing="keep")

    def claim(self, now: datetime) -> list[Claimed]:
        """Lease up to ``batch`` due jobs: their ``run_at`` moves ahead by ``LEASE``."""
        until = now + LEASE
        with self.db.read() as session:  # most polls find nothing: no write lock then
            if session.scalar(select(Job.id).where(Job.run_at <= now).limit(1)) is None:
                return []
        with self.db.write() as session:
            query = (
                select(Job.id, Job.key, Job.kind, Job.workspace_id, Job.payload, Job.attempts)
                .where(Job.run_at <= now)
                .order_by(Job.run_at)
                .limit(self.batch)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = session.execute(query).all()
            if rows:
                session.execute(
                    update(Job)
                    .where(Job.id.in_([row.id for row in rows]))
                    .values(run_at=until, attempts=Job.attempts + 1)
                )
        return [
            Claimed(
                row.id, row.key, row.kind, row.workspace_id, row.payload, row.attempts + 1, until
            )
            for row in rows
        ]

    def run_due(self, now: datetime | None = None) -> int:
        """Run one batch of due jobs; returns how many were claimed."""
        now = now or utc_now()
        claimed = self.claim(now)
        work = [job for job in claimed if job.kind in self.registry.work]
        if work:
            self._run_work(work, now)
        io = [job for job in claimed if job.kind in self.registry.io]
        if io:
            waiting = [job for job in io if job.kind in self.registry.parallel]
            outcomes = {}
            for job in io:
                if job not in waiting:
                    outcomes[job.id] = self._run_io(job, now)
                    time.sleep(YIELD_SECONDS)  # let requests in between (the GIL)
            if waiting:
                with ThreadPoolExecutor(min(IO_THREADS, len(waiting))) as pool:
                    ran = pool.map(lambda job: self._run_io(job, now), waiting)
                    outcomes.update(zip([job.id for job in waiting], ran, strict=True))
            with self.db.write() as session:  # one short transaction for the batch
                for job in io:
                    outcome = outcomes[job.id]
                    if isinstance(outcome, Exception):
                        _failed(session, job, now, outcome)
                    else:
                        _finish(session, job, outcome)
        for job in claimed:
            if job.kind not in self.registry.work and job.kind not in self.registry.io:
                self._run_maintenance(job, now)
        return len(claimed)

    def _run_io(self, job: Claimed, now: datetime) -> datetime | Exception | None:
        try:
            return self.registry.io[job.kind](self.db, job, now)
        except Exception as exc:
            log.exception("job %s (%s) failed; attempt %d", job.key, job.kind, job.attempts)
            return exc

    def drain(self, now: datetime | None = None) -> int:
        """Run batches until nothing is due at ``now``; returns how many jobs ran."""
        now = now or utc_now()
        ran = 0
        for _ in range(MAX_ROUNDS):  # jobs may queue jobs (an alert queues its webhook)
            count = self.run_due(now)
            ran += count
            if count == 0:
                break
        return ran

    def _run_work(self, claimed: list[Claimed], now: datetime) -> None:
        """Each job in a transaction of its own, then a pause as long as it took (at
        least ``YIELD_SECONDS``): the database's write lock is held one job at a time
        (a few milliseconds) and at most half the time, so requests that decide get
        their turn between jobs however many are due."""
        plans: dict[Any, Any] = {}  # parsed plans (no database rows) serve every job
        for job in claimed:
            handler = self.registry.work[job.kind]
            # Rows a handler keeps in ``scratch`` belong to its transaction: a new one each.
            scratch: dict[Any, Any] = {"claimed": [job], **plans}
            started = time.monotonic()
            try:
                with self.db.write() as session:
                    following = handler(session, job, now, scratch)
                    _finish(session, job, following)
                if "plans" in scratch:
                    plans["plans"] = scratch["plans"]
            except Exception as exc:
                log.exception("job %s (%s) failed; attempt %d", job.key, job.kind, job.attempts)
                with self.db.write() as session:
                    _failed(session, job, now, exc)
            time.sleep(max(YIELD_SECONDS, time.monotonic() - started))

    def _run_maintenance(self, job: Claimed, now: datetime) -> None:
        found = self.registry.maintenance.get(job.kind)
        if found is None:  # a kind this version does not know: leave it for one that does
            log.warning("job %s has unknown kind %s", job.key, job.kind)
            return
        interval, handler = found
        try:
            handler(self.db, now)
        except Exception as exc:
            log.exception("maintenance %s failed", job.kind)
            with self.db.write() as session:
                _failed(session, job, now, exc)
            return
        with self.db.write() as session:
            _finish(session, job, now + timedelta(seconds=interval))


def _finish(session: Session, job: Claimed, following: datetime | None) -> None:
    """Done (None) or due again at ``following``, unless the job was scheduled anew
    while it ran (its ``run_at`` is no longer the lease): then it runs at that time."""
    mine = (Job.id == job.id) & (Job.run_at == job.leased_until)
    if following is None:
        done = session.execute(delete(Job).where(mine))
    else:
        done = session.execute(
            update(Job).where(mine).values(run_at=following, attempts=0, last_error=None)
        )
    if done.rowcount:  # type: ignore[attr-defined]
        return
    run_at = session.scalar(select(Job.run_at).where(Job.id == job.id))
    if run_at is None:
        return
    following = run_at if following is None else min(following, run_at)
    if following is None:
        session.execute(delete(Job).where(Job.id == job.id))
        return
    session.execute(
        update(Job).where(Job.id == job.id).values(run_at=following, attempts=0, last_error=None)
    )


def _failed(session: Session, job: Claimed, now: datetime, exc: Exception) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            run_at=now + _backoff(job.attempts), last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
    )
