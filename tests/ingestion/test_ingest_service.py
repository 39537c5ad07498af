"""The ingestion service under concurrency, the group committer, and the raw SQL path."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from meterline.auth import onboarding
from meterline.customers import service as customers
from meterline.customers.schemas import CustomerCreate
from meterline.db import Database
from meterline.ingestion import store
from meterline.ingestion.models import Event
from meterline.kit import rawsql
from meterline.meters import service as meters
from meterline.meters.models import MeterRollup
from meterline.meters.schemas import MeterCreate
from meterline.recording import pipeline as service
from meterline.recording.committer import GroupCommitter

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)


@pytest.fixture
def policy(db: Database) -> service.Policy:
    with db.write() as session:
        workspace = onboarding.create_workspace(session, "w").workspace
        meters.create(
            session,
            workspace.id,
            MeterCreate(key="tokens", event_type="llm", aggregation="sum", value_property="tokens"),
        )
        return service.policy(session, workspace.id)


def raw(i: int, tokens: int = 1) -> dict[str, object]:
    return {
        "id": f"e{i}",
        "type": "llm",
        "customer": f"c{i % 7}",
        "timestamp": (NOW - timedelta(seconds=i)).isoformat(),
        "properties": {"tokens": tokens},
    }


def tokens_total(db: Database) -> Decimal:
    with db.read() as session:
        return sum((r.sum for r in session.scalars(select(MeterRollup))), Decimal(0))


def test_concurrent_senders_of_the_same_events_count_each_once(
    db: Database, policy: service.Policy
) -> None:
    batches = [[raw(i) for i in range(start, start + 300)] for start in (0, 100, 200, 0, 150)]
    results: list[service.Outcome] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(batches))

    def send(batch: list[dict[str, object]]) -> None:
        try:
            valid, _ = service.check(batch, policy)
            barrier.wait()
            with db.write() as session:
                results.append(service.record(session, policy, valid))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.accepted for r in results) == 500
    assert sum(r.duplicates for r in results) == 1500 - 500
    with db.read() as session:
        assert len(session.scalars(select(Event.seq)).all()) == 500
    assert tokens_total(db) == 500


def test_group_committer_answers_each_request_and_isolates_failures(
    db: Database, policy: service.Policy
) -> None:
    committer = GroupCommitter(db, max_events=1000)
    broken = service.Policy(999_999, True, policy.lateness)  # no such workspace
    outcomes: dict[int, service.Outcome | BaseException] = {}

    def send(n: int) -> None:
        target = broken if n == 3 else policy
        valid, _ = service.check([raw(n * 100 + i) for i in range(50)], target)
        try:
            outcomes[n] = committer.submit(target, valid)
        except BaseException as exc:
            outcomes[n] = exc

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    committer.close()
    assert isinstance(outcomes.pop(3), Exception)
    assert all(isinstance(o, service.Outcome) and o.accepted == 50 for o in outcomes.values())
    assert tokens_total(db) == 7 * 50


def test_raw_rows_read_back_exactly_as_the_orm_writes_them(
    db: Database, policy: service.Policy
) -> None:
    moment = datetime(2026, 11, 20, 23, 59, 59, 999999, tzinfo=UTC)
    with db.write() as session:
        customer = customers.create(session, policy.workspace_id, CustomerCreate(external_id="x"))
        assert customer.external_id == "x"
        driver = rawsql.driver(session)
        driver.insert_many(
            session,
            "events",
            store.COLUMNS,
            [
                (
                    policy.workspace_id,
                    "raw1",
                    "t",
                    1,
                    1,
                    None,
                    driver.timestamp(moment),
                    driver.timestamp(moment),
                    driver.decimal(Decimal("1E+3")),
                    driver.json({"a": [1, "ü"]}),
                    "h",
                )
            ],
        )
    with db.read() as session:
        event = session.scalars(select(Event).where(Event.event_id == "raw1")).one()
        assert event.timestamp == moment
        assert event.quantity == Decimal(1000)
        assert event.properties == {"a": [1, "ü"]}
        if db.is_sqlite:  # the same text the ORM writes, so comparisons in SQL agree
            orm_text = session.execute(text("SELECT created_at FROM workspaces")).scalar()
            raw_text = session.execute(text("SELECT received_at FROM events")).scalar()
            assert len(orm_text) == len(raw_text) == len("2026-11-20 23:59:59.999999")
            assert orm_text[10] == raw_text[10] == " "
