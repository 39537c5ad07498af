"""Authentication for routes: ``Depends(require(Scope.X))`` gives the caller's context."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from meterline.api.deps import get_db, get_settings
from meterline.auth import service
from meterline.auth.context import AuthContext
from meterline.auth.scopes import Scope
from meterline.config import Settings
from meterline.db import Database
from meterline.errors import InsufficientScope, Unauthorized
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
    with db.read() as session:
        context, last_used_at = service.authenticate(session, credentials.credentials)
    now = utc_now()
    if service.is_touch_due(last_used_at, now, settings.api_key_touch_seconds):
        with db.write() as session:
            service.touch(session, context.key_id, now)
    return context


def require(scope: Scope) -> Callable[[AuthContext], AuthContext]:
    """A dependency that lets the call through only for keys with ``scope`` (or admin)."""

    def check(context: AuthContext = Depends(authenticate)) -> AuthContext:
        if not context.allows(scope):
            raise InsufficientScope(f"This key lacks the `{scope.value}` scope.")
        return context

    return check
