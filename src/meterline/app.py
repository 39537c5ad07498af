"""The HTTP application. ``create_app`` does no I/O; the lifespan owns the engine."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from meterline import __version__, dashboard
from meterline.api import openapi, ops, problems
from meterline.api.cors import CustomerTokenCors
from meterline.api.middleware import BodyLimitMiddleware, MetricsMiddleware, NulGuardMiddleware
from meterline.api.router import V1_ROUTERS
from meterline.config import Settings
from meterline.db import Database, checkpointer
from meterline.entitlements.fastpath import CheckFastPath
from meterline.entitlements.routes import decision_writer
from meterline.entitlements.service import STANDING_SECONDS
from meterline.jobs.registry import job_thread
from meterline.kit.cache import TTLCache
from meterline.ratelimits.service import limiter_for
from meterline.recording.committer import GroupCommitter
from meterline.runtime import Runtime

DESCRIPTION = """Usage metering, real-time limits, credits and usage-based billing.

Authenticate with `Authorization: Bearer ml_…`. Errors are `application/problem+json`
with a stable `code`. Lists page with `?limit=` and `?after=<next_cursor>`."""


def create_app(settings: Settings | None = None, *, jobs_thread: bool | None = None) -> FastAPI:
    """The ASGI app. Background jobs run on a thread of it (every ``jobs_poll_seconds``)
    unless ``jobs_thread`` is False: `meterline serve` runs them in a worker process of
    their own instead (``METERLINE_JOBS_MODE=process``, the default)."""
    settings = settings or Settings()
    if jobs_thread is None:
        jobs_thread = settings.jobs_mode != "off"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url, settings, background_checkpoints=True)
        committer = GroupCommitter(db)
        decisions = decision_writer(db, settings)
        pages = dashboard.start(db, settings)
        runtime.start(db, committer, decisions, pages, limiter_for(settings, db))
        background = [checkpointer(db)] if db.is_sqlite else []
        if jobs_thread and settings.jobs_poll_seconds > 0:
            background.append(job_thread(db, settings))
        # Everything made at start-up lives as long as the process: moved out of the
        # garbage collector's sight, full collections stay short (no pauses of tens
        # of milliseconds in the middle of a request).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            for thread in background:
                thread.close()
            committer.close()
            decisions.close()
            pages.snapshots.close()
            db.dispose()

    app = FastAPI(
        title="Meterline",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by the dashboard's routes, with local Swagger UI files
        redoc_url=None,
    )
    runtime = Runtime(
        settings=settings,
        registry=CollectorRegistry(),
        key_cache=TTLCache(settings.cache_seconds),
        policy_cache=TTLCache(settings.cache_seconds),
        standing_cache=TTLCache(STANDING_SECONDS),
    )
    app.state.runtime = runtime
    problems.install(app)
    openapi.install(app)
    app.include_router(ops.router)
    for router in V1_ROUTERS:
        app.include_router(router)
    dashboard.install(app, settings)
    # Added last runs first: metrics see every request, including refused bodies; the
    # check fast path sees only bodies within the limit.
    app.add_middleware(CheckFastPath)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(NulGuardMiddleware)
    if settings.cors_origins:  # no origin configured: no CORS, and no cost
        routes = [route for router in V1_ROUTERS for route in router.routes]
        app.add_middleware(CustomerTokenCors, origins=settings.cors_origins, routes=routes)
    app.add_middleware(MetricsMiddleware, registry=runtime.registry)
    return app


def app_from_env() -> FastAPI:
    """The app for each worker process of `meterline serve --workers N` (settings from
    the environment, which the CLI fills in before starting the workers)."""
    settings = Settings()
    return create_app(settings, jobs_thread=settings.jobs_mode == "thread")
