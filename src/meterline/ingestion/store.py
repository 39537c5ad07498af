"""The events table, and nothing else: insert with de-duplication, read, mark void,
purge. The bottom of recording usage — it knows no meter, limit, credit or customer
rule; ``recording.pipeline`` decides what goes in.

De-duplication is the database's: ``INSERT … ON CONFLICT DO NOTHING`` on the unique
``(workspace_id, event_id)``, so retries and concurrent senders (other processes
included) never store an id twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from meterline.db import Database
from meterline.errors import NotFound
from meterline.ingestion.models import Event
from meterline.kit import rawsql


@dataclass(frozen=True)
class Scope:
    """Whose usage: everything billed to a customer, or only what it sent itself."""

    customer_id: int
    billing: bool


COLUMNS = (  # (name, PostgreSQL type), in the order of ``insert``'s value tuples
    ("workspace_id", "bigint"),
    ("event_id", "text"),
    ("event_type", "text"),
    ("customer_id", "bigint"),
    ("billing_customer_id", "bigint"),
    ("subject", "text"),
    ('"timestamp"', "timestamptz"),
    ("received_at", "timestamptz"),
    ("quantity", "numeric"),
    ("properties", "json"),
    ("content_hash", "text"),
)


def insert(session: Session, values: list[tuple[Any, ...]]) -> dict[str, int]:
    """Insert rows (driver-ready tuples in ``COLUMNS`` order); ids already stored are
    skipped by the unique constraint. Returns event id → storage sequence of the rows
    inserted."""
    returned = rawsql.driver(session).insert_many(
        session,
        "events",
        COLUMNS,
        values,
        "ON CONFLICT (workspace_id, event_id) DO NOTHING RETURNING seq, event_id",
    )
    return {event_id: seq for seq, event_id in returned}


def stored_hashes(session: Session, workspace_id: int, event_ids: Iterable[str]) -> dict[str, str]:
    """Event id → content hash, for those of ``event_ids`` that are stored (on the
    recording path: driver-level SQL)."""
    ids = list(event_ids)
    mark = rawsql.driver(session).mark
    found: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = rawsql.run(
            session,
            f"SELECT event_id, content_hash FROM events WHERE workspace_id = {mark} "
            f"AND event_id IN ({', '.join([mark] * len(chunk))})",
            (workspace_id, *chunk),
        )
        found.update((str(event_id), str(content_hash)) for event_id, content_hash in rows)
    return found


def stored_hash(session: Session, workspace_id: int, event_id: str) -> str | None:
    """The content hash of a stored event id (None: not stored)."""
    return stored_hashes(session, workspace_id, [event_id]).get(event_id)


def find(session: Session, workspace_id: int, event_id: str) -> Event:
    """A stored event by its id; 404 when there is none (or it was purged)."""
    found = session.scalar(
        select(Event).where(Event.workspace_id == workspace_id, Event.event_id == event_id)
    )
    if found is None:
        raise NotFound(f"No event {event_id!r}.")
    return found


def mark_voided(session: Session, event: Event, now: datetime, reason: str | None) -> bool:
    """Mark the event void (it stays stored and listed); False when it already was —
    decided by the row itself, so two voids at once cannot both go ahead."""
    result = session.execute(
        update(Event)
        .where(Event.seq == event.seq, Event.voided_at.is_(None))
        .values(voided_at=now, void_reason=reason)
    )
    if int(result.rowcount) == 0:  # type: ignore[attr-defined]
        return False
    session.refresh(event)
    return True


def has_events(session: Session, workspace_id: int, event_type: str) -> bool:
    return (
        session.scalar(
            select(Event.seq)
            .where(Event.workspace_id == workspace_id, Event.event_type == event_type)
            .limit(1)
        )
        is not None
    )


def filtered(
    workspace_id: int,
    scope: Scope | None,
    start: datetime | None,
    end: datetime | None,
) -> Select[Event]:
    """A workspace's events, for one customer's scope (an organization's includes its
    members'), with timestamps in ``[start, end)``."""
    query = select(Event).where(Event.workspace_id == workspace_id)
    if scope is not None:
        column = Event.billing_customer_id if scope.billing else Event.customer_id
        query = query.where(column == scope.customer_id)
    if start is not None:
        query = query.where(Event.timestamp >= start)
    if end is not None:
        query = query.where(Event.timestamp < end)
    return query


def counting(
    session: Session,
    workspace_id: int,
    event_type: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    scope: Scope | None = None,
    chunk: int = 5000,
) -> Iterator[Event]:
    """Events of one type that count (not voided), in storage order, streamed in chunks."""
    last = 0
    while True:
        query = (
            filtered(workspace_id, scope, start, end)
            .where(Event.event_type == event_type, Event.seq > last, Event.voided_at.is_(None))
            .order_by(Event.seq)
            .limit(chunk)
        )
        batch = list(session.scalars(query))
        yield from batch
        if len(batch) < chunk:
            return
        last = batch[-1].seq


PURGE_CHUNK = 5000


def purge(db: Database, kept: list[tuple[int, int]], now: datetime) -> int:
    """Delete raw events older than each workspace's retention (``kept``: workspace id
    → days), a chunk per transaction. Rollups stay: usage totals, limits and invoices
    keep their numbers; only event listings, minute windows and rebuilding a meter's
    rollups lose what is gone."""
    deleted = 0
    for workspace_id, days in kept:
        cutoff = now - timedelta(days=days)
        while True:
            with db.write() as session:
                doomed = select(Event.seq).where(
                    Event.workspace_id == workspace_id, Event.timestamp < cutoff
                )
                result = session.execute(
                    delete(Event).where(Event.seq.in_(doomed.limit(PURGE_CHUNK).scalar_subquery()))
                )
            count = int(result.rowcount)  # type: ignore[attr-defined]
            deleted += count
            if count < PURGE_CHUNK:
                break
    return deleted
