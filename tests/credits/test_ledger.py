"""The ledger with the clock in hand: plan allocations per period, expiry mid-period at
the exact time, the background sweep, and `meterline credits verify`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from cli_support import run
from limits_support import meter
from meterline.credits import service
from meterline.credits.schemas import DebitCreate, GrantCreate
from meterline.db import Database
from support import Api

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # Europe/Berlin: periods start at 23:00 UTC


def _credits(db: Database, ws: int, customer: str, now: datetime) -> Any:
    service.refresh(db, ws, customer, now)
    with db.read() as session:
        return service.read(session, ws, customer, now)


def _entries(db: Database, ws: int, customer: str) -> list[Any]:
    with db.read() as session:
        page = service.transactions(session, ws, customer, limit=1000, after=None)
    return list(reversed(page.items))


def _subscribed(api: Api, expires: bool = True) -> None:
    meter(api, "q")
    plan = {
        "key": "monthly",
        "name": "Monthly",
        "currency": "EUR",
        "credits": {"amount": "100", "expires_at_period_end": expires},
        "features": {"q": {"credit_cost": {"per_unit": "1"}}},
    }
    assert api.post("/v1/plans", json=plan).status_code == 201
    api.post("/v1/customers", json={"external_id": "c", "timezone": "Europe/Berlin"})
    sub = {"customer": "c", "plan": "monthly", "start_at": "2026-01-01T00:00:00+01:00"}
    assert api.post("/v1/subscriptions", json=sub).status_code == 201


def test_allocation_once_per_period_expiring_at_its_end(api: Api, db: Database) -> None:
    _subscribed(api)
    ws = api.workspace_id
    first = _credits(db, ws, "c", T0)
    assert first.balance == Decimal(100)
    [allocation] = first.grants
    assert allocation.source == "allocation"
    assert allocation.expires_at == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)  # Apr 1, CEST
    # Reading again, debiting, a sweep: still one allocation this period.
    with db.write() as session:
        service.debit(session, ws, "c", DebitCreate(amount=Decimal(30)), T0 + timedelta(days=1))
    service.sweep(db, T0 + timedelta(days=2))
    assert _credits(db, ws, "c", T0 + timedelta(days=3)).balance == Decimal(70)
    # Next period: the rest of March's allocation expired at its end, April's granted.
    april = _credits(db, ws, "c", datetime(2026, 4, 2, tzinfo=UTC))
    assert april.balance == Decimal(100)
    kinds = [(e.type, e.amount, e.balance_after, e.at) for e in _entries(db, ws, "c")]
    assert kinds == [
        ("grant", Decimal(100), Decimal(100), T0),
        ("debit", Decimal(-30), Decimal(70), T0 + timedelta(days=1)),
        ("expiry", Decimal(-70), Decimal(0), datetime(2026, 3, 31, 22, 0, tzinfo=UTC)),
        ("grant", Decimal(100), Decimal(100), datetime(2026, 4, 2, tzinfo=UTC)),
    ]


def test_allocations_that_do_not_expire_accumulate(api: Api, db: Database) -> None:
    _subscribed(api, expires=False)
    ws = api.workspace_id
    assert _credits(db, ws, "c", T0).balance == Decimal(100)
    assert _credits(db, ws, "c", T0 + timedelta(days=31)).balance == Decimal(200)
    assert _credits(db, ws, "c", T0 + timedelta(days=31)).balance == Decimal(200)


def test_expiry_mid_period_at_the_exact_time(api: Api, db: Database) -> None:
    api.post("/v1/customers", json={"external_id": "c"})
    ws = api.workspace_id
    noon = T0 + timedelta(days=5)
    with db.write() as session:
        service.grant(session, ws, "c", GrantCreate(amount=Decimal(50), expires_at=noon), T0)
        service.grant(session, ws, "c", GrantCreate(amount=Decimal(20), priority=5), T0)
    with db.write() as session:  # one microsecond before: still there
        before = noon - timedelta(microseconds=1)
        entry = service.debit(session, ws, "c", DebitCreate(amount=Decimal(10)), before)
    assert entry.balance_after == Decimal(60)
    assert _credits(db, ws, "c", noon).balance == Decimal(20)  # at the instant: gone
    last = _entries(db, ws, "c")[-1]
    assert (last.type, last.amount, last.at) == ("expiry", Decimal(-40), noon)


def test_sweep_expires_without_any_read(api: Api, db: Database) -> None:
    api.post("/v1/customers", json={"external_id": "c"})
    ws = api.workspace_id
    with db.write() as session:
        service.grant(
            session, ws, "c", GrantCreate(amount=Decimal(5), expires_at=T0 + timedelta(hours=1)), T0
        )
    assert service.sweep(db, T0 + timedelta(minutes=59)) == (0, 0)
    assert service.sweep(db, T0 + timedelta(hours=2)) == (1, 0)
    [_, expiry] = _entries(db, ws, "c")
    assert (expiry.type, expiry.at) == ("expiry", T0 + timedelta(hours=1))
    assert service.sweep(db, T0 + timedelta(hours=3)) == (0, 0)  # nothing left due


def test_verify_catches_a_corrupted_cache(api: Api, db: Database, database_url: str) -> None:
    api.post("/v1/customers", json={"external_id": "c"})
    ws = api.workspace_id
    now = datetime.now(UTC)
    with db.write() as session:
        service.grant(session, ws, "c", GrantCreate(amount=Decimal(10)), now)
        service.debit(session, ws, "c", DebitCreate(amount=Decimal(4)), now)
    clean = run("credits", "verify", "--database-url", database_url)
    assert clean.returncode == 0, clean.stderr
    assert "matches" in clean.stdout
    with db.write() as session:  # someone "fixes" a balance by hand
        session.execute(text("UPDATE credit_wallets SET balance = '1000'"))
        session.execute(text("UPDATE credit_grants SET remaining = '7'"))
    broken = run("credits", "verify", "--database-url", database_url)
    assert broken.returncode == 1
    assert "c\tbalance\tcached 1000\tledger 6" in broken.stdout
    assert "\tcached 7\tledger 6" in broken.stdout
    repaired = run("credits", "verify", "--repair", "--database-url", database_url)
    assert repaired.returncode == 0, repaired.stderr
    assert run("credits", "verify", "--database-url", database_url).returncode == 0
    assert _credits(db, ws, "c", datetime.now(UTC)).balance == Decimal(6)
