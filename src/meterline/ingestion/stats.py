"""Hourly counts of what reached ingestion — accepted, duplicates, rejected, unmetered —
per workspace, written in the same transaction as the events they count (one upsert per
batch), so the dashboard's numbers are exact and survive a crash with the events."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meterline.ingestion.models import IngestStat
from meterline.kit import rawsql


@dataclass(frozen=True)
class Counts:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    unmetered: int = 0

    def __bool__(self) -> bool:
        return any((self.accepted, self.duplicates, self.rejected, self.unmetered))


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


_local = threading.local()


def shard() -> int:
    """This thread's row of each hour: a random 31-bit number chosen once per thread,
    so no two threads, of this process or another, share one (but by a ~2^-31 chance)."""
    shard: int | None = getattr(_local, "shard", None)
    if shard is None:
        shard = _local.shard = random.randrange(1, 2**31)
    return shard


def add(session: Session, workspace_id: int, at: datetime, counts: Counts) -> None:
    """Add ``counts`` to the workspace's hour holding ``at`` (this thread's shard)."""
    if not counts:
        return
    d = rawsql.driver(session)
    rawsql.run(
        session,
        "INSERT INTO ingest_stats (workspace_id, hour, shard, accepted, duplicates, "
        f"rejected, unmetered) VALUES ({', '.join([d.mark] * 7)}) "
        "ON CONFLICT (workspace_id, hour, shard) "
        "DO UPDATE SET accepted = ingest_stats.accepted + excluded.accepted, "
        "duplicates = ingest_stats.duplicates + excluded.duplicates, "
        "rejected = ingest_stats.rejected + excluded.rejected, "
        "unmetered = ingest_stats.unmetered + excluded.unmetered",
        (
            workspace_id,
            d.timestamp(hour_of(at)),
            shard(),
            counts.accepted,
            counts.duplicates,
            counts.rejected,
            counts.unmetered,
        ),
    )


@dataclass(frozen=True)
class Hour:
    hour: datetime
    counts: Counts


def hourly(session: Session, workspace_id: int, start: datetime, end: datetime) -> list[Hour]:
    """The hours in ``[start, end)`` that saw anything, oldest first (shards added up)."""
    rows = session.execute(
        select(
            IngestStat.hour,
            func.sum(IngestStat.accepted),
            func.sum(IngestStat.duplicates),
            func.sum(IngestStat.rejected),
            func.sum(IngestStat.unmetered),
        )
        .where(
            IngestStat.workspace_id == workspace_id,
            IngestStat.hour >= hour_of(start),
            IngestStat.hour < end,
        )
        .group_by(IngestStat.hour)
        .order_by(IngestStat.hour)
    )
    return [
        Hour(hour, Counts(int(accepted), int(duplicates), int(rejected), int(unmetered)))
        for hour, accepted, duplicates, rejected, unmetered in rows
    ]
