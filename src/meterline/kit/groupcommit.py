"""Group commit for units of work that must each be answered after their commit.

A writer thread takes the units that callers submit and runs them one after another,
as many as are waiting (up to ``max_units``), in **one** transaction. A unit that
raises rolls the group back, and the group runs again with each unit in a savepoint of
its own, so the raising unit rolls back alone and the others go on (savepoints only
then: they cost two statements a unit). The transaction commits once — one fsync for
the group — and only then is each caller answered. An idle writer commits a lone unit
at once, so latency stays that of one transaction; under load the queue that forms
while a commit is in flight becomes the next group, so throughput is not one fsync per
unit.

If the group's commit (or its transaction) fails, every unit of it is run again alone,
so one unit cannot fail the others. Units must therefore be safe to run again: they
read the database and decide afresh (nothing is kept from a rolled-back run). When the
failure says the database itself is unavailable (``unavailable``: a lock or statement
timeout, a lost connection), nothing is retried: the group and every unit waiting
behind it get that answer at once, instead of each waiting out the timeout in turn.

With ``threads`` > 1 (PostgreSQL, where transactions run side by side) several writers
take groups from one queue. Each group runs its units sorted by ``order`` (the customer),
so groups take their row locks in one order and do not deadlock one another; should
they still (a member billed to its organization sorts elsewhere), the database's
deadlock error sends the group's units to run alone.

Callers on an event loop ``await submit_async(unit)`` (no thread of their own waits);
threads call ``submit(unit)``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

T = TypeVar("T")
Unit = Callable[[Session], T]


@dataclass(eq=False)
class _Pending(Generic[T]):
    unit: Unit[T]
    order: str  # units of one group run sorted by this (a lock order)
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[T] | None = None
    done: threading.Event | None = None
    result: Any = None
    error: BaseException | None = None

    def settle(self) -> None:
        if self.future is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(_resolve, self.future, self.result, self.error)
        elif self.done is not None:
            self.done.set()


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled (the request went away), or answered already
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class GroupWriter:
    """Runs submitted units in group transactions on a thread of its own.

    ``begin`` opens one transaction (commit on a clean exit, roll back on an
    exception). ``translate`` turns what a unit or the commit raised into what its
    caller sees (a database error into a refusal, say)."""

    def __init__(
        self,
        begin: Callable[[], AbstractContextManager[Session]],
        *,
        name: str,
        max_units: int = 32,
        translate: Callable[[BaseException], BaseException] = lambda exc: exc,
        unavailable: Callable[[BaseException], bool] = lambda exc: False,
        threads: int = 1,
    ) -> None:
        self._begin = begin
        self._unavailable = unavailable
        self._name = name
        self._max_units = max_units
        self._translate = translate
        self._queue: queue.SimpleQueue[_Pending[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._count = threads
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.groups = 0  # transactions committed or tried (for tests and metrics)

    def submit(self, unit: Unit[T], order: str = "") -> T:
        """Run ``unit`` in the next group; returns its result once committed."""
        pending: _Pending[T] = _Pending(unit, order, done=threading.Event())
        self._put(pending)
        assert pending.done is not None
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        result: T = pending.result
        return result

    async def submit_async(self, unit: Unit[T], order: str = "") -> T:
        """``submit`` for a caller on an event loop: it awaits, nothing blocks."""
        loop = asyncio.get_running_loop()
        pending: _Pending[T] = _Pending(unit, order, loop, loop.create_future())
        self._put(pending)
        assert pending.future is not None
        return await pending.future

    def _put(self, pending: _Pending[Any]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self._name} writer is closed")
            if not self._threads:
                for number in range(self._count):
                    thread = threading.Thread(
                        target=self._run, name=f"meterline-{self._name}-{number}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
            self._queue.put(pending)

    def close(self) -> None:
        """Finish what was submitted, then stop the thread."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < self._max_units:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
            group.sort(key=lambda pending: pending.order)
            try:
                self._commit(group)
            except BaseException as exc:  # a bug here must not leave callers waiting
                for pending in group:
                    if pending.done is not None and pending.done.is_set():
                        continue
                    pending.result, pending.error = None, exc
                    pending.settle()
            if stop:
                return

    def _waiting(self) -> list[_Pending[Any]]:
        """Take every unit queued now (a close request stays queued)."""
        found: list[_Pending[Any]] = []
        while True:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                return found
            if more is None:
                self._queue.put(None)
                return found
            found.append(more)

    def _commit(self, group: list[_Pending[Any]], isolated: bool = False) -> None:
        """Run the group in one transaction. First without savepoints (a unit that
        raises rolls the whole group back, and the group runs again ``isolated``: each
        unit in a savepoint of its own), since units seldom raise and a savepoint costs
        two statements per unit (round trips on PostgreSQL)."""
        self.groups += 1
        raised = False  # by a unit, not by the transaction or its commit
        try:
            with self._begin() as session:
                for pending in group:
                    pending.result, pending.error = None, None
                    if len(group) == 1 or not isolated:
                        try:
                            pending.result = pending.unit(session)
                        except BaseException:
                            raised = True
                            raise
                        continue
                    try:
                        with session.begin_nested():
                            # SAVEPOINT now: SQLAlchemy emits it only when the session
                            # next uses its connection, and units write through the
                            # driver (``kit.rawsql``), which it never sees.
                            session.connection()
                            pending.result = pending.unit(session)
                    except Exception as exc:
                        pending.error = exc
        except BaseException as exc:
            if self._unavailable(exc):
                group += self._waiting()
                for pending in group:
                    pending.result, pending.error = None, exc
            elif len(group) > 1 and raised and not isolated:
                self._commit(group, isolated=True)  # the raising unit rolls back alone
                return
            elif len(group) > 1:  # each alone: one unit cannot fail the others
                for pending in group:
                    self._commit([pending])
                return
            else:
                group[0].result, group[0].error = None, exc
        for pending in group:
            if pending.error is not None:
                pending.error = self._translate(pending.error)
            pending.settle()
