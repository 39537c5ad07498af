"""Per-key request rate limits (SPEC §5: configurable, off by default).

A key is held to its own rate when it has one (``rate_limit`` on the key: an
override, or unlimited), else to the server-wide default (``METERLINE_RATE_LIMIT_*``),
else to nothing. Authentication resolves that once, when it loads the key, into
``AuthContext.rate``: a request whose key has no rate runs nothing here (one attribute
read), so with no default and no override nothing is counted or stored at all.

``limiter_for`` gives the process its limiter, which keeps each limited key's state.
Two kinds, one rule (``gcra``), the rate passed with each request:

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
from meterline.ratelimits.gcra import Admission, Rate, admit

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
    blocking: bool  # True: does I/O (call it from a worker thread, not the event loop)

    def admit(self, key_id: str, now_us: int, rate: Rate) -> Admission: ...


class LocalLimiter:
    """Each key's TAT in this process's memory."""

    blocking = False

    def __init__(self) -> None:
        self._tats: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, key_id: str, now_us: int, rate: Rate) -> Admission:
        with self._lock:
            found = admit(self._tats.get(key_id), now_us, rate)
            self._tats[key_id] = found.tat_us
            if len(self._tats) > 100_000:  # keys long idle are as good as new ones
                self._forget_idle(now_us)
            return found

    def _forget_idle(self, now_us: int) -> None:
        self._tats = {k: tat for k, tat in self._tats.items() if tat > now_us}


class SharedLimiter:
    """Each key's TAT in the database, moved by one statement per request."""

    blocking = True

    def __init__(self, db: Database) -> None:
        self._db = db
        sqlite = {"max": "MAX", "true": "1"}
        spelling = sqlite if db.is_sqlite else {"max": "GREATEST", "true": "TRUE"}
        self._sql = text(_UPSERT.format(**spelling))

    def admit(self, key_id: str, now_us: int, rate: Rate) -> Admission:
        params = {
            "key": key_id,
            "now": now_us,
            "first": now_us + rate.interval_us,
            "interval": rate.interval_us,
            "tolerance": rate.tolerance_us,
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


def default_rate(settings: Settings) -> Rate | None:
    """The rate of keys without one of their own; None when the default is off."""
    if not settings.rate_limit_per_second:
        return None
    return Rate.of(settings.rate_limit_per_second, settings.rate_limit_burst)


def limiter_for(settings: Settings, db: Database) -> Limiter:
    """The process's limiter. Made whether or not any limit is set (a key may be given
    a rate at any time, through any process); it costs nothing until a key with a rate
    makes a request."""
    if db.is_sqlite and settings.workers == 1:
        return LocalLimiter()
    return SharedLimiter(db)


def enforce(limiter: Limiter, key_id: str, rate: Rate) -> None:
    """Let the key's request through at ``rate``, or raise 429 ``rate_limited`` with
    Retry-After."""
    now_us = _now_us()
    found = limiter.admit(key_id, now_us, rate)
    if not found.allowed:
        seconds = found.retry_after(rate, now_us)
        raise RateLimited(
            f"This API key may make {rate.per_second:g} requests a second "
            f"({rate.burst} at once); retry in {seconds} s.",
            retry_after=seconds,
        )
