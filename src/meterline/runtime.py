"""What a running app holds, typed: its settings, caches and metrics (made by
``create_app``, no I/O) and its database, ingest writer and dashboard state (made by the
lifespan). Routes and middleware reach it with ``runtime_of(request)``; nothing else is
kept on ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry
from starlette.requests import HTTPConnection

from meterline.config import Settings
from meterline.db import Database
from meterline.kit.cache import TTLCache

if TYPE_CHECKING:
    from fastapi import FastAPI

    from meterline.dashboard import DashboardState
    from meterline.kit.groupcommit import GroupWriter
    from meterline.ratelimits.service import Limiter
    from meterline.recording.committer import GroupCommitter


@dataclass
class Runtime:
    settings: Settings
    registry: CollectorRegistry
    # API keys and customer tokens → their context (auth/deps.py).
    key_cache: TTLCache[Any, Any]
    # Workspace id → its recording policy (recording/routes.py).
    policy_cache: TTLCache[Any, Any]
    # Customers' standings, trusted only while the workspace's terms version is the one
    # they were read at; the TTL bounds how long a subscription that starts or ends by
    # the clock (with no change made) may take to be read again.
    standing_cache: TTLCache[Any, Any]
    _db: Database | None = field(default=None, repr=False)
    _committer: GroupCommitter | None = field(default=None, repr=False)
    _decisions: GroupWriter | None = field(default=None, repr=False)
    _dashboard: DashboardState | None = field(default=None, repr=False)
    _rate_limiter: Limiter | None = field(default=None, repr=False)

    @property
    def db(self) -> Database:
        return _started(self._db)

    @property
    def committer(self) -> GroupCommitter:
        return _started(self._committer)

    @property
    def decisions(self) -> GroupWriter:
        """Checks, holds and settlements run here, committed in groups."""
        return _started(self._decisions)

    @property
    def dashboard(self) -> DashboardState:
        return _started(self._dashboard)

    @property
    def rate_limiter(self) -> Limiter:
        """Per-key request limits' state; used only for keys with a rate (auth/deps.py)."""
        return _started(self._rate_limiter)

    def start(
        self,
        db: Database,
        committer: GroupCommitter,
        decisions: GroupWriter,
        dashboard: DashboardState,
        rate_limiter: Limiter,
    ) -> None:
        self._db, self._committer, self._dashboard = db, committer, dashboard
        self._decisions, self._rate_limiter = decisions, rate_limiter


T = TypeVar("T")


def _started(value: T | None) -> T:
    if value is None:
        raise RuntimeError("the app has not started (its lifespan makes this)")
    return value


def runtime_of(holder: HTTPConnection | FastAPI | Any) -> Runtime:
    """The runtime of a request's app (or of an app)."""
    app = holder.app if isinstance(holder, HTTPConnection) else holder
    runtime: Runtime = app.state.runtime
    return runtime
