"""Group commit: one writer thread turns many concurrent ingest requests into one
transaction, and acknowledges each request only after that transaction is durable.

Under load, requests queue while a commit is in flight and the next commit takes them
all (up to ``max_events``); an idle server commits each request at once, so latency
stays low. If a combined commit fails, each request is retried alone, so one bad
request never fails the others.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from meterline.db import Database
from meterline.ingestion.validation import ValidEvent
from meterline.recording import pipeline


@dataclass
class _Job:
    policy: pipeline.Policy
    events: Sequence[ValidEvent]
    rejected: int  # refused by validation: counted in the statistics with the batch
    done: threading.Event = field(default_factory=threading.Event)
    outcome: pipeline.Outcome | None = None
    error: BaseException | None = None


class GroupCommitter:
    def __init__(self, db: Database, *, max_events: int = 20_000) -> None:
        self._db = db
        self._max_events = max_events
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(
        self, policy: pipeline.Policy, events: Sequence[ValidEvent], rejected: int = 0
    ) -> pipeline.Outcome:
        """Store the events; returns once they are committed (or raises). ``rejected``:
        events of the same request that validation refused (for the statistics)."""
        job = _Job(policy, events, rejected)
        with self._lock:
            if self._closed:
                raise RuntimeError("the ingest writer is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="meterline-ingest-writer", daemon=True
                )
                self._thread.start()
            self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.outcome is not None
        return job.outcome

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, size = [job], len(job.events)
            stop = False
            while size < self._max_events:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.append(more)
                size += len(more.events)
            self._commit(jobs)
            if stop:
                return

    def _commit(self, jobs: list[_Job]) -> None:
        try:
            with self._db.write() as session:
                outcomes = [
                    pipeline.record(session, job.policy, job.events, rejected_before=job.rejected)
                    for job in jobs
                ]
        except BaseException as exc:
            if len(jobs) > 1:
                for job in jobs:
                    self._commit([job])
                return
            jobs[0].error = exc
            jobs[0].done.set()
            return
        for job, outcome in zip(jobs, outcomes, strict=True):
            job.outcome = outcome
            job.done.set()
