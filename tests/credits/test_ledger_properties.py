"""Any sequence of grants, debits, voids and passing time leaves a ledger that adds up:
the balance is the sum of the entries and of the live grants' remainders, never below
zero, each debit drawn in consumption order — checked against a small model."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline.credits import ledger, service
from meterline.credits.schemas import DebitCreate, GrantCreate
from meterline.db import Database
from meterline.errors import InsufficientCredits
from support import Api

T0 = datetime(2026, 5, 1, tzinfo=UTC)
_names = itertools.count()

amounts = st.integers(min_value=1, max_value=50).map(Decimal)
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("grant"),
            amounts,
            st.integers(0, 2),
            st.one_of(st.none(), st.integers(1, 10)),  # expires after N hours
        ),
        st.tuples(st.just("debit"), amounts),
        st.tuples(st.just("void"), st.integers(0, 20)),
        st.tuples(st.just("wait"), st.integers(1, 4)),  # hours
    ),
    max_size=25,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=ops)
def test_any_history_adds_up(api: Api, db: Database, steps: list[tuple[Any, ...]]) -> None:
    ws = api.workspace_id
    name = f"p{next(_names)}"
    api.post("/v1/customers", json={"external_id": name})
    now = T0
    model: list[dict[str, Any]] = []  # the grants: id, left, priority, expires, age
    made: list[str] = []
    for step in steps:
        for g in model:  # what the model expects to have expired by now
            if g["expires"] is not None and g["expires"] <= now:
                g["left"] = Decimal(0)
        kind = step[0]
        if kind == "wait":
            now += timedelta(hours=step[1])
        elif kind == "grant":
            _, amount, priority, hours = step
            expires = None if hours is None else now + timedelta(hours=hours)
            data = GrantCreate(amount=amount, priority=priority, expires_at=expires)
            with db.write() as session:
                result = service.grant(session, ws, name, data, now)
            made.append(result.grant.id)
            model.append(
                {
                    "id": result.grant.id,
                    "left": amount,
                    "priority": priority,
                    "expires": expires,
                    "age": len(model),
                }
            )
        elif kind == "debit":
            amount = step[1]
            balance = sum(g["left"] for g in model)
            try:
                with db.write() as session:
                    entry = service.debit(session, ws, name, DebitCreate(amount=amount), now)
            except InsufficientCredits:
                assert amount > balance
                continue
            assert amount <= balance
            expected = []
            need = amount
            live = [g for g in model if g["left"] > 0]
            live.sort(
                key=lambda g: (g["priority"], g["expires"] is None, g["expires"] or now, g["age"])
            )
            for g in live:
                take = min(g["left"], need)
                if take:
                    expected.append((g["id"], take))
                    g["left"] -= take
                    need -= take
            assert [(d.grant, d.amount) for d in entry.drawn] == expected
        elif kind == "void" and made:
            target = made[step[1] % len(made)]
            g = next(g for g in model if g["id"] == target)
            try:
                with db.write() as session:
                    service.void(session, ws, name, target, now)
            except service.GrantClosed:
                assert g["left"] == 0  # used up, expired or voided before
                continue
            assert g["left"] > 0
            g["left"] = Decimal(0)
    for g in model:
        if g["expires"] is not None and g["expires"] <= now:
            g["left"] = Decimal(0)
    service.refresh(db, ws, name, now)
    with db.read() as session:
        read = service.read(session, ws, name, now)
        entries = service.transactions(session, ws, name, limit=1000, after=None).items
        assert ledger.verify(session) == []
    assert read.balance == sum(g["left"] for g in model)
    assert read.balance == sum((e.amount for e in entries), Decimal(0))
    assert all(e.balance_after >= 0 for e in entries)
    assert {(g.id, g.remaining) for g in read.grants} == {
        (g["id"], g["left"]) for g in model if g["left"] > 0
    }
