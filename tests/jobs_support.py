"""Moving the clock and running background jobs as `meterline serve` would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from meterline.jobs.registry import runner
from meterline.kit.time import Clock, clock
from meterline.runtime import runtime_of
from support import Api


def at(text: str) -> datetime:
    """An ISO time; UTC when it names no offset."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@contextmanager
def frozen(start: str) -> Iterator[Clock]:
    """The whole process (the app included) reads time from the clock; move it with
    ``.set(at(...))``."""
    found = Clock(at(start))
    with clock(found):
        yield found


def run_jobs(api: Api) -> int:
    """Every job due now (by the clock), in the app's database."""
    state = runtime_of(api.client.app)
    jobs = runner(state.db, state.settings)
    jobs.ensure_maintenance()
    return jobs.drain()
