"""Limit counters: per billing customer, meter and window, locked and kept in the database.

Concurrency (PostgreSQL): every writer that can change a limited meter's total for a
customer — ingestion batches, consumes, holds, settlements, counter creation — first
takes a transaction-level lock on (meter, customer) with ``guard``, in one global
order. So a consume reads counters no other transaction is about to change, and a
counter made from the rollups sees every event committed before it and is incremented
by every event committed after it. SQLite needs no guard: ``BEGIN IMMEDIATE`` makes
each write transaction the only one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from meterline.kit import rawsql
from meterline.kit.decimals import CONTEXT


def guard(session: Session, pairs: Iterable[tuple[int, int]]) -> None:
    """Lock (meter id, customer id) pairs until the transaction ends: an upsert of their
    ``usage_guards`` rows, in sorted order so two writers never wait on each other.
    Row locks, unlike advisory locks, need no room in PostgreSQL's shared lock table,
    however many customers a batch names."""
    if session.get_bind().dialect.name != "postgresql":
        return
    held = guarded(session)
    ordered = sorted(set(pairs) - held)
    if not ordered:
        return  # this transaction holds them already
    held.update(ordered)
    rawsql.run(
        session,
        "INSERT INTO usage_guards (meter_id, customer_id, hits) "
        "SELECT m, c, 1 FROM unnest(%s::bigint[], %s::bigint[]) AS t(m, c) "
        "ON CONFLICT (meter_id, customer_id) DO UPDATE SET hits = usage_guards.hits + 1",
        ([m for m, _ in ordered], [c for _, c in ordered]),
    )


def guarded(session: Session) -> set[tuple[int, int]]:
    """The (meter id, customer id) pairs this transaction has locked already (whoever
    takes a guard another way — ``entitlements.onecall`` — adds what it took)."""
    held: set[tuple[int, int]] = rawsql.transaction_state(session).setdefault("guarded", set())
    return held


_FEW = 16  # up to this many contributions, one UPDATE each beats SELECT + UPDATE


def fold(session: Session, items: Sequence[tuple[int, int, datetime, Decimal]]) -> None:
    """Add (meter id, billing customer id, timestamp, contribution) to the counters
    whose window holds the timestamp. Counters not made yet are left alone: whoever
    makes one later reads these events from the rollups."""
    if not items:
        return
    d = rawsql.driver(session)
    if len(items) <= _FEW:
        rawsql.run_many(
            session,
            f"UPDATE usage_counters SET used = {d.add.format('used', d.mark)} "
            f"WHERE customer_id = {d.mark} AND meter_id = {d.mark} "
            f"AND counts_from <= {d.mark} AND window_end > {d.mark}",
            [
                (d.decimal(value), customer_id, meter_id, d.timestamp(t), d.timestamp(t))
                for meter_id, customer_id, t, value in items
            ],
        )
        return
    by_pair: dict[tuple[int, int], list[tuple[datetime, Decimal]]] = defaultdict(list)
    for meter_id, customer_id, timestamp, value in items:
        by_pair[(meter_id, customer_id)].append((timestamp, value))
    earliest = min(t for values in by_pair.values() for t, _ in values)
    meters = sorted({m for m, _ in by_pair})
    customers = sorted({c for _, c in by_pair})
    found = rawsql.run(
        session,
        "SELECT id, meter_id, customer_id, counts_from, window_end FROM usage_counters "
        f"WHERE customer_id IN ({', '.join([d.mark] * len(customers))}) "
        f"AND meter_id IN ({', '.join([d.mark] * len(meters))}) AND window_end > {d.mark}",
        (*customers, *meters, d.timestamp(earliest)),
    )
    deltas: dict[int, Decimal] = {}
    for counter_id, meter_id, customer_id, counts_from, window_end in found:
        values = by_pair.get((meter_id, customer_id))
        if not values:
            continue
        start, end = d.parse_timestamp(counts_from), d.parse_timestamp(window_end)
        total = sum((v for t, v in values if start <= t < end), Decimal(0))
        if total:
            deltas[counter_id] = CONTEXT.plus(total)
    if deltas:
        rawsql.run_many(
            session,
            f"UPDATE usage_counters SET used = {d.add.format('used', d.mark)} WHERE id = {d.mark}",
            [(d.decimal(value), counter_id) for counter_id, value in sorted(deltas.items())],
        )
