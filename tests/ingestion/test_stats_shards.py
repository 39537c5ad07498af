"""Ingest statistics: each writer thread adds to a shard of its own for the hour, and
the hourly figures add the shards up — exact, whichever threads wrote them."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import func, select

from meterline.auth import onboarding
from meterline.db import Database
from meterline.ingestion import stats
from meterline.ingestion.models import IngestStat


def test_threads_write_their_own_rows_and_the_hour_adds_them_up(db: Database) -> None:
    with db.write() as session:
        workspace_id = onboarding.create_workspace(session, "s").workspace.id
    hour = datetime(2026, 11, 29, 10, tzinfo=UTC)

    def add(times: int) -> None:
        for i in range(times):
            with db.write() as session:
                at = hour.replace(minute=i % 60)
                stats.add(session, workspace_id, at, stats.Counts(accepted=2, duplicates=1))

    threads = [threading.Thread(target=add, args=(n,)) for n in (5, 7, 11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.write() as session:  # and one from this thread, in the next hour
        stats.add(session, workspace_id, hour.replace(hour=11), stats.Counts(rejected=4))
    with db.read() as session:
        rows = session.scalar(select(func.count()).select_from(IngestStat))
        found = stats.hourly(session, workspace_id, hour, hour.replace(hour=12))
    assert rows == 4  # a row per thread and hour: three threads at 10:00, one at 11:00
    assert found == [
        stats.Hour(hour, stats.Counts(accepted=46, duplicates=23)),
        stats.Hour(hour.replace(hour=11), stats.Counts(rejected=4)),
    ]
