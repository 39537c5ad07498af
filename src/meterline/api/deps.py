"""Dependencies every route shares: the database and paging parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request

from meterline.config import Settings
from meterline.db import Database
from meterline.kit.cache import TTLCache
from meterline.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT
from meterline.runtime import runtime_of

# Routes carry their full path (not a prefix added when routers are included), so that
# metrics and logs see the real route template.
V1 = "/v1"


# Trivial dependencies are ``async``: FastAPI runs sync ones in the thread pool, and
# each hop costs more than the work itself.
async def get_db(request: Request) -> Database:
    db: Database = runtime_of(request).db
    return db


async def get_settings(request: Request) -> Settings:
    settings: Settings = runtime_of(request).settings
    return settings


async def standings(request: Request) -> TTLCache[Any, Any]:
    """Customers' plans and periods, cached per process and checked against the
    workspace's terms version before each use (``entitlements.service``)."""
    cache: TTLCache[Any, Any] = runtime_of(request).standing_cache
    return cache


DB = Annotated[Database, Depends(get_db)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
After = Annotated[str | None, Query(description="Cursor from the previous page's `next_cursor`.")]


__all__ = ["DB", "DEFAULT_LIMIT", "V1", "After", "Limit", "get_db", "get_settings"]
