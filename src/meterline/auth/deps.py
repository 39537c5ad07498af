"""Authentication for routes: ``Depends(require(Scope.X))`` gives the caller's context."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from meterline.api.deps import get_db, get_settings
from meterline.auth import service
from meterline.auth.context import AuthContext
from meterline.auth.scopes import Scope
from meterline.config import Settings
from meterline.db import Database
from meterline.errors import InsufficientScope, Unauthorized
from meterline.kit.cache import TTLCache
from meterline.kit.time import utc_now

_bearer = HTTPBearer(auto_error=False, description="An API key: `Bearer ml_…`")


def authenticate(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    db: Database = Depends(get_db),
    settings: Settings = Depends(get_settings),
) -> AuthContext:
    if credentials is None:
        if request.headers.get("authorization"):
            raise Unauthorized("Use the Bearer scheme: `Authorization: Bearer ml_…`.")
        raise Unauthorized()
    secret = credentials.credentials

    def load() -> tuple[AuthContext, datetime | None]:
        with db.read() as session:
            return service.authenticate(session, secret)

    cache: TTLCache[str, tuple[AuthContext, datetime | None]] = request.app.state.key_cache
    context, last_used_at = cache.get_or_load(secret, load)
    now = utc_now()
    if service.is_touch_due(last_used_at, now, settings.api_key_touch_seconds):
        with db.write() as session:
            service.touch(session, context.key_id, now)
        cache.discard(secret)  # so the next request sees the new last_used_at
    return context


def require(scope: Scope) -> Callable[[AuthContext], Coroutine[Any, Any, AuthContext]]:
    """A dependency that lets the call through only for keys with ``scope`` (or admin)."""

    async def check(context: AuthContext = Depends(authenticate)) -> AuthContext:
        if not context.allows(scope):
            raise InsufficientScope(f"This key lacks the `{scope.value}` scope.")
        return context

    return check
