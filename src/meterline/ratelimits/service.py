"""Per-key request rate limits (SPEC §5: configurable, off by default).

``limiter_for`` gives the process its limiter, or None when limits are off (then
nothing at all runs per request). Two kinds, one rule (``gcra``):

- ``SharedLimiter``: the key's state is a row of ``rate_limit_states``, moved by one
  ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` per request, so every process on the
  database enforces one limit per key. Used on PostgreSQL, and on SQLite when
  ``meterline serve`` runs several worker processes.
- ``LocalLimiter``: the state in this process's memory. Used on SQLite with one
  process, where a write per request would queue behind (and fsync like) every other
  write on the database's single lock.

A limiter that cannot reach its database lets the request through (logged): a rate
limit protects the server, it is not a guarantee the request's own work then makes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from meterline.config import Settings
from meterline.db import Database
from meterline.errors import RateLimited
from meterline.ratelimits.gcra import MICROS, Admission, Rate, admit

log = logging.getLogger("meterline")

_UPSERT = """
INSERT INTO rate_limit_states (key_id, tat_us, allowed) VALUES (:key, :first, {true})
ON CONFLICT (key_id) DO UPDATE SET
  allowed = {max}(rate_limit_states.tat_us, :now) + :interval - :now <= :tolerance,
  tat_us = CASE WHEN {max}(rate_limit_states.tat_us, :now) + :interval - :now <= :tolerance
                THEN {max}(rate_limit_states.tat_us, :now) + :interval
                ELSE rate_limit_states.tat_us END
RETURNING allowed, tat_us
"""


def _now_us() -> int:
    return time.time_ns() // 1000


class Limiter(Protocol):
    rate: Rate
    blocking: bool  # True: does I/O (call it from a worker thread, not the event loop)

    def admit(self, key_id: str, now_us: int) -> Admission: ...


class LocalLimiter:
    """Each key's TAT in this process's memory."""

    blocking = False

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self._tats: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, key_id: str, now_us: int) -> Admission:
        with self._lock:
            found = admit(self._tats.get(key_id), now_us, self.rate)
            self._tats[key_id] = found.tat_us
            if len(self._tats) > 100_000:  # keys long idle are as good as new ones
                self._forget_idle(now_us)
            return found

    def _forget_idle(self, now_us: int) -> None:
        self._tats = {k: tat for k, tat in self._tats.items() if tat > now_us}


class SharedLimiter:
    """Each key's TAT in the database, moved by one statement per request."""

    blocking = True

    def __init__(self, rate: Rate, db: Database) -> None:
        self.rate = rate
        self._db = db
        sqlite = {"max": "MAX", "true": "1"}
        spelling = sqlite if db.is_sqlite else {"max": "GREATEST", "true": "TRUE"}
        self._sql = text(_UPSERT.format(**spelling))

    def admit(self, key_id: str, now_us: int) -> Admission:
        params = {
            "key": key_id,
            "now": now_us,
            "first": now_us + self.rate.interval_us,
            "interval": self.rate.interval_us,
            "tolerance": self.rate.tolerance_us,
        }
        try:
            if self._db.is_sqlite:  # a write: through the database's write turn
                with self._db.write() as session:
                    allowed, tat_us = session.execute(self._sql, params).one()
            else:  # one statement on a pooled connection, no session around it
                with self._db.engine.begin() as connection:
                    allowed, tat_us = connection.execute(self._sql, params).one()
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            log.warning("rate limit not checked (database unavailable): %s", exc)
            return Admission(True, now_us)
        return Admission(bool(allowed), int(tat_us))


def limiter_for(settings: Settings, db: Database) -> Limiter | None:
    """The process's limiter; None when limits are off (the default)."""
    if not settings.rate_limit_per_second:
        return None
    rate = Rate.of(settings.rate_limit_per_second, settings.rate_limit_burst)
    if db.is_sqlite and settings.workers == 1:
        return LocalLimiter(rate)
    return SharedLimiter(rate, db)


def enforce(limiter: Limiter, key_id: str) -> None:
    """Let the key's request through, or raise 429 ``rate_limited`` with Retry-After."""
    now_us = _now_us()
    found = limiter.admit(key_id, now_us)
    if not found.allowed:
        seconds = found.retry_after(limiter.rate, now_us)
        per_second = MICROS / limiter.rate.interval_us
        raise RateLimited(
            f"This API key may make {per_second:g} requests a second "
            f"({limiter.rate.burst} at once); retry in {seconds} s.",
            retry_after=seconds,
        )
