"""Group commit (``kit.groupcommit``) on real databases: concurrent units share a
transaction, each is answered only once its effects are committed, a unit that fails
rolls back alone, and a database that cannot answer fails the group at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from meterline.db import Database
from meterline.kit import rawsql
from meterline.kit.groupcommit import GroupWriter


@pytest.fixture
def scratch(db: Database) -> Iterator[Database]:
    with db.write() as session:
        session.execute(text("CREATE TABLE gc_rows (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"))
    yield db
    with db.write() as session:
        session.execute(text("DROP TABLE gc_rows"))


def _insert(row: int, name: str | None = "x") -> Callable[[Session], int]:
    def unit(session: Session) -> int:
        session.execute(
            text("INSERT INTO gc_rows (id, name) VALUES (:i, :n)"), {"i": row, "n": name}
        )
        return row

    return unit


def _gated(db: Database, gate: threading.Event) -> Callable[[], AbstractContextManager[Session]]:
    """Transactions that wait for ``gate`` first, so later units queue behind them."""

    @contextmanager
    def begin() -> Iterator[Session]:
        gate.wait(5)
        with db.write() as session:
            yield session

    return begin


def _all_at_once(
    writer: GroupWriter, gate: threading.Event, submit: Callable[[int], object], count: int
) -> None:
    """``submit(0..count-1)`` from as many threads, released together by ``gate``."""
    threads = [threading.Thread(target=submit, args=(i,)) for i in range(count)]
    try:
        for thread in threads:
            thread.start()
        gate.set()
        for thread in threads:
            thread.join(10)
    finally:
        writer.close()


def _stored(db: Database) -> set[int]:
    with db.read() as session:
        return {r for (r,) in session.execute(text("SELECT id FROM gc_rows"))}


def test_a_lone_unit_commits_at_once_and_is_answered_after(scratch: Database) -> None:
    writer = GroupWriter(scratch.write, name="t")
    try:
        assert writer.submit(_insert(1)) == 1
        assert _stored(scratch) == {1}  # visible to another connection when answered
    finally:
        writer.close()


def test_concurrent_units_share_transactions_and_each_sees_its_commit(scratch: Database) -> None:
    gate = threading.Event()  # the first group waits, so the others queue behind it
    writer = GroupWriter(_gated(scratch, gate), name="t", max_units=64)
    seen: dict[int, bool] = {}

    def submit(i: int) -> None:
        writer.submit(_insert(i))
        seen[i] = i in _stored(scratch)

    _all_at_once(writer, gate, submit, 40)
    assert _stored(scratch) == set(range(40))
    assert len(seen) == 40
    assert all(seen.values())
    assert writer.groups < 40  # some transactions held several units


def test_a_failing_unit_rolls_back_alone(scratch: Database) -> None:
    gate = threading.Event()
    writer = GroupWriter(_gated(scratch, gate), name="t")
    outcomes: dict[int, object] = {}

    def submit(i: int) -> None:
        unit = _insert(i, None if i == 3 else "x")  # NOT NULL: row 3 fails
        try:
            outcomes[i] = writer.submit(unit)
        except sa_exc.IntegrityError as exc:
            outcomes[i] = exc

    _all_at_once(writer, gate, submit, 6)
    assert isinstance(outcomes[3], sa_exc.IntegrityError)
    assert {i: outcomes[i] for i in outcomes if i != 3} == {0: 0, 1: 1, 2: 2, 4: 4, 5: 5}
    assert _stored(scratch) == {0, 1, 2, 4, 5}


def test_an_unavailable_database_fails_the_group_and_those_waiting_at_once(
    scratch: Database,
) -> None:
    calls = 0
    gate = threading.Event()

    @contextmanager
    def broken() -> Iterator[Session]:
        nonlocal calls
        calls += 1
        gate.wait(5)
        raise sa_exc.OperationalError("BEGIN", {}, Exception("database is locked"))
        yield  # pragma: no cover

    writer = GroupWriter(
        broken,
        name="t",
        max_units=2,
        unavailable=lambda exc: isinstance(exc, sa_exc.OperationalError),
        translate=lambda exc: RuntimeError(f"denied: {exc.__class__.__name__}"),
    )
    errors: list[str] = []

    def submit(i: int) -> None:
        try:
            writer.submit(_insert(i))
        except RuntimeError as exc:
            errors.append(str(exc))

    _all_at_once(writer, gate, submit, 10)
    assert errors == ["denied: OperationalError"] * 10
    assert calls < 10  # not each retried alone, nor each in a transaction of its own
    assert _stored(scratch) == set()


def test_an_event_loop_awaits_its_unit_without_a_thread(scratch: Database) -> None:
    writer = GroupWriter(scratch.write, name="t")

    async def many() -> list[int]:
        return list(await asyncio.gather(*(writer.submit_async(_insert(i)) for i in range(20))))

    try:
        assert asyncio.run(many()) == list(range(20))
    finally:
        writer.close()
    assert _stored(scratch) == set(range(20))


def test_units_of_a_group_run_in_their_order(scratch: Database) -> None:
    gate = threading.Event()
    ran: list[str] = []
    writer = GroupWriter(_gated(scratch, gate), name="t", threads=1)

    def unit(name: str) -> Callable[[Session], str]:
        def run(session: Session) -> str:
            ran.append(name)
            return name

        return run

    first = threading.Thread(target=writer.submit, args=(unit("first"),))
    first.start()  # the first group: waits at the gate with one unit
    while writer.groups == 0:
        threading.Event().wait(0.001)
    rest = [
        threading.Thread(target=writer.submit, args=(unit(name), name))
        for name in ("c9", "c1", "c5")
    ] + [threading.Thread(target=writer.submit, args=(unit("no order"),))]
    for thread in rest:
        thread.start()
    threading.Event().wait(0.1)  # all four queued behind the first group
    gate.set()
    for thread in [first, *rest]:
        thread.join(10)
    writer.close()
    assert ran == ["first", "no order", "c1", "c5", "c9"]  # one group, its units sorted


def test_savepoints_only_when_a_unit_raises(scratch: Database) -> None:
    """A group runs without savepoints; when a unit raises (here after its write), the
    group runs again with one per unit, and only the raising unit's write is undone."""
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(scratch.engine, "before_cursor_execute", seen)
    try:
        gate = threading.Event()
        writer = GroupWriter(_gated(scratch, gate), name="t")
        _all_at_once(writer, gate, lambda i: writer.submit(_insert(i)), 8)
        assert _stored(scratch) == set(range(8))
        assert writer.groups < 8  # grouped
        assert not [s for s in statements if s.startswith("SAVEPOINT")]

        gate = threading.Event()
        writer = GroupWriter(_gated(scratch, gate), name="t")
        outcomes: dict[int, object] = {}

        def raw_insert(row: int, refuse: bool = False) -> Callable[[Session], int]:
            def unit(session: Session) -> int:
                # Through the driver, as decisions write: SQLAlchemy never sees it.
                d = rawsql.driver(session)
                sql = f"INSERT INTO gc_rows (id, name) VALUES ({d.mark}, {d.mark})"
                rawsql.run(session, sql, (row, "x"))
                if refuse:
                    raise ValueError(f"row {row} refused after its write")
                return row

            return unit

        def submit(i: int) -> None:
            try:
                outcomes[i] = writer.submit(raw_insert(100 + i, refuse=i == 2))
            except ValueError as exc:
                outcomes[i] = exc

        first = threading.Thread(target=submit, args=(0,))
        first.start()  # its group waits for the gate; the next four queue behind it
        _until(lambda: writer.groups == 1)
        rest = [threading.Thread(target=submit, args=(i,)) for i in range(1, 5)]
        for thread in rest:
            thread.start()
        _until(lambda: writer._queue.qsize() == 4)
        gate.set()
        for thread in [first, *rest]:
            thread.join(10)
        writer.close()
        assert writer.groups == 3  # unit 0; then 1-4 together, and again with savepoints
        assert isinstance(outcomes[2], ValueError)
        assert {i: v for i, v in outcomes.items() if i != 2} == {0: 100, 1: 101, 3: 103, 4: 104}
        assert _stored(scratch) == set(range(8)) | {100, 101, 103, 104}
        assert [s for s in statements if s.startswith("SAVEPOINT")]
    finally:
        event.remove(scratch.engine, "before_cursor_execute", seen)


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.001)
