"""The common consume on PostgreSQL in one round trip: ``meterline_consume``.

A consume otherwise sends seven statements (guards, wallet, counters and holds, event,
rollups, counters, statistics), each a round trip and a turn of the server's parser. The
function (migration 0013) runs them server-side in the same order and under the same
locks, deciding the hard limits between the reads and the writes. It takes the usage
the function can record exactly as ``recording.pipeline`` would:

- the customer's standing is known and every limit's counter of the current window is
  made (``missing`` otherwise — the ordinary path makes it from the rollups);
- no meter of the event's type is priced in credits or counts unique values, and the
  event gives each of them a usable value or is filtered out by it (no warnings);
- the ledger has nothing due (``stale``: an expiry or a plan allocation to write first);
- the event id is not stored yet (``repeat``: a duplicate or a conflict is answered by
  the ordinary path, which reads the stored content).

Anything else — and any status but ``ok`` or ``refused`` — goes the ordinary way in the
same transaction; the function has written nothing then but the guards, which that path
takes anyway. ``tests/entitlements/test_onecall.py`` compares the rows both paths write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from meterline.ingestion import stats
from meterline.ingestion.validation import ValidEvent
from meterline.kit import rawsql
from meterline.kit.periods import bucket_floor
from meterline.meters import counters
from meterline.meters.aggregation import MeterSpec, ValueProblem, contribute, latest_key

_PARAMETERS = (  # meterline_consume's, in the order ``consume`` passes them
    ("p_workspace", "bigint"),
    ("p_billing", "bigint"),
    ("p_meter", "bigint"),
    ("p_guards", "bigint[]"),
    ("p_now", "timestamptz"),
    ("p_due", "text"),
    ("p_kinds", "text[]"),
    ("p_starts", "timestamptz[]"),
    ("p_caps", "numeric[]"),
    ("p_amount", "numeric"),
    ("p_event_id", "text"),
    ("p_type", "text"),
    ("p_customer", "bigint"),
    ("p_subject", "text"),
    ("p_timestamp", "timestamptz"),
    ("p_received", "timestamptz"),
    ("p_quantity", "numeric"),
    ("p_properties", "json"),
    ("p_hash", "text"),
    ("p_bucket", "timestamptz"),
    ("p_latest", "text"),
    ("p_rollup_meters", "bigint[]"),
    ("p_rollup_groups", "text[]"),
    ("p_rollup_values", "numeric[]"),
    ("p_counter_meters", "bigint[]"),
    ("p_counter_values", "numeric[]"),
    ("p_hour", "timestamptz"),
    ("p_shard", "integer"),
)
SQL = (  # named, and typed (an empty array has no type of its own)
    "SELECT status, used, held, balance FROM meterline_consume("
    + ", ".join(f"{name} => %s::{kind}" for name, kind in _PARAMETERS)
    + ")"
)


@dataclass(frozen=True)
class Window:
    """One limit of the feature, as the function decides it."""

    kind: str
    start: datetime
    cap: Decimal | None  # the hard cap in raw units; None: not enforced


@dataclass(frozen=True)
class Answer:
    status: str  # 'ok' or 'refused'
    used: list[Decimal]  # each window's usage before this one
    held: Decimal
    balance: Decimal


ENABLED = True  # False: every consume takes the ordinary path (tests, benchmarks compare)


def usable(session: Session) -> bool:
    return ENABLED and rawsql.driver(session).dialect == "postgresql"


def consume(
    session: Session,
    workspace_id: int,
    ids: tuple[int, int],
    spec: MeterSpec,
    type_specs: Sequence[MeterSpec],
    windows: Sequence[Window],
    amount: Decimal,
    event: ValidEvent,
    due: str | None,
    now: datetime,
) -> Answer | None:
    """Decide and record ``event`` (of ``spec``'s feature; ``ids``: the customer and its
    billing customer) in one call; None when the ordinary path must do it."""
    customer_id, billing_id = ids
    rolled: list[tuple[int, str, Decimal]] = []
    counted: list[tuple[int, Decimal]] = []
    for each in type_specs:
        if each.credited or each.aggregation == "unique_count":
            return None
        try:
            found = contribute(each, event.quantity, event.properties)
        except ValueProblem:
            return None
        if found is None:
            if each.id == spec.id:
                return None
            continue
        if found.unique is not None:
            return None
        rolled.append((each.id, found.group_key, found.value))
        if each.limited:
            counted.append((each.id, found.value))
    rolled.sort(key=lambda row: (row[0], row[1]))
    held = counters.guarded(session)  # the order of the ordinary path, less those held
    order = [spec.id, *sorted({m for m, _ in counted} - {spec.id})]
    guards = [m for m in order if (m, billing_id) not in held]
    timestamp = event.timestamp.astimezone(UTC)
    assert event.event_id is not None
    rows = rawsql.run(
        session,
        SQL,
        (
            workspace_id,
            billing_id,
            spec.id,
            guards,
            now,
            due,
            [w.kind for w in windows],
            [w.start for w in windows],
            [w.cap for w in windows],
            amount,
            event.event_id,
            event.event_type,
            customer_id,
            event.subject,
            timestamp,
            now,
            event.quantity,
            rawsql.POSTGRESQL.json(event.properties),
            event.content_hash,
            bucket_floor(timestamp),
            latest_key(timestamp.isoformat(), 0)[:-20],
            [m for m, _, _ in rolled],
            [g for _, g, _ in rolled],
            [v for _, _, v in rolled],
            [m for m, _ in counted],
            [v for _, v in counted],
            stats.hour_of(now),
            stats.shard(),
        ),
    )
    held.update((m, billing_id) for m in guards)
    status, used, on_hold, balance = rows[0]
    if status not in ("ok", "refused"):
        return None
    return Answer(status, [Decimal(u) for u in used], Decimal(on_hold), Decimal(balance))
