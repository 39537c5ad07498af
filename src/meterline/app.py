"""The HTTP application. ``create_app`` does no I/O; the lifespan owns the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from meterline import __version__
from meterline.api import ops, problems
from meterline.api.middleware import BodyLimitMiddleware, MetricsMiddleware
from meterline.api.router import v1
from meterline.config import Settings
from meterline.db import Database
from meterline.ingestion.committer import GroupCommitter
from meterline.kit.cache import TTLCache

DESCRIPTION = """Usage metering, real-time limits, credits and usage-based billing.

Authenticate with `Authorization: Bearer ml_…`. Errors are `application/problem+json`
with a stable `code`. Lists page with `?limit=` and `?after=<next_cursor>`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings.database_url, settings)
        app.state.committer = GroupCommitter(app.state.db)
        try:
            yield
        finally:
            app.state.committer.close()
            app.state.db.dispose()

    app = FastAPI(
        title="Meterline",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = CollectorRegistry()
    app.state.key_cache = TTLCache(settings.cache_seconds)
    app.state.policy_cache = TTLCache(settings.cache_seconds)
    problems.install(app)
    app.include_router(ops.router)
    app.include_router(v1)
    # Added last runs first: metrics see every request, including refused bodies.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, registry=app.state.registry)
    return app


def app_from_env() -> FastAPI:
    """The app for each worker process of `meterline serve --workers N` (settings from
    the environment, which the CLI fills in before starting the workers)."""
    return create_app(Settings())
