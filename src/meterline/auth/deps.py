"""Authentication for routes: ``Depends(require(Scope.X))`` gives the caller's context."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from meterline.auth import service, tokens
from meterline.auth.context import AuthContext
from meterline.auth.scopes import Scope
from meterline.config import Settings
from meterline.db import Database
from meterline.errors import InsufficientScope, Unauthorized
from meterline.kit.cache import TTLCache
from meterline.kit.time import utc_now
from meterline.ratelimits import service as ratelimits
from meterline.ratelimits.service import Limiter
from meterline.runtime import Runtime, runtime_of
from meterline.workspaces import service as workspaces

_bearer = HTTPBearer(auto_error=False, description="An API key: `Bearer ml_…`")


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> AuthContext:
    """The caller's key. A cached key whose last-used time is fresh enough is answered
    on the event loop; loading or touching it goes to the thread pool (database I/O)."""
    if credentials is None:
        if request.headers.get("authorization"):
            raise Unauthorized("Use the Bearer scheme: `Authorization: Bearer ml_…`.")
        raise Unauthorized()
    secret = credentials.credentials
    state = runtime_of(request)
    if secret.startswith(tokens.PREFIX):
        return await run_in_threadpool(_customer_token, secret, state.key_cache, state.db)
    context = cached_context(state, secret)
    if context is None:
        context = await run_in_threadpool(
            _load_and_touch, secret, state.key_cache, state.db, state.settings
        )
    rate = context.rate
    if rate is not None:  # no rate for the key (none by default): nothing runs here
        limiter: Limiter = state.rate_limiter
        if limiter.blocking:
            await run_in_threadpool(ratelimits.enforce, limiter, context.key_id, rate)
        else:
            ratelimits.enforce(limiter, context.key_id, rate)
    return context


def cached_context(state: Runtime, secret: str) -> AuthContext | None:
    """The key's context when this process knows it and its last-used time needs no
    write: the whole of authentication for nearly every request, without I/O."""
    settings: Settings = state.settings
    cache: TTLCache[str, tuple[AuthContext, datetime | None]] = state.key_cache
    cached = cache.get(secret)
    if cached is None or service.is_touch_due(cached[1], utc_now(), settings.api_key_touch_seconds):
        return None
    return cached[0]


def _load_and_touch(
    secret: str,
    cache: TTLCache[str, tuple[AuthContext, datetime | None]],
    db: Database,
    settings: Settings,
) -> AuthContext:
    def load() -> tuple[AuthContext, datetime | None]:
        with db.read() as session:
            return service.authenticate(
                session, secret, default_rate=ratelimits.default_rate(settings)
            )

    context, last_used_at = cache.get_or_load(secret, load)
    now = utc_now()
    if service.is_touch_due(last_used_at, now, settings.api_key_touch_seconds):
        with db.write() as session:
            service.touch(session, context.key_id, now)
        cache.discard(secret)  # so the next request sees the new last_used_at
    return context


def cached_token_secret(cache: TTLCache[Any, Any], db: Database, workspace_id: int) -> str | None:
    """The workspace's token secret (customer tokens, dashboard sessions), cached per
    process; None while the workspace has none."""

    def load() -> str | None:
        with db.read() as session:
            return workspaces.token_secret(session, workspace_id, create=False)

    found: str | None = cache.get_or_load(("token-secret", workspace_id), load)
    return found


def _customer_token(token: str, cache: TTLCache[Any, Any], db: Database) -> AuthContext:
    workspace_id, customer = tokens.verify(
        token, lambda w: cached_token_secret(cache, db, w), utc_now()
    )
    return AuthContext(workspace_id, "customer-token", frozenset(), customer)


_TOKEN_GUARDS: set[Callable[..., Any]] = set()


def accepts_customer_tokens(dependency: Callable[..., Any] | None) -> bool:
    """Whether ``dependency`` is a guard made by ``require_or_customer`` (CORS answers
    browsers on the routes that use one, and on no other)."""
    return dependency in _TOKEN_GUARDS


def require_or_customer(
    scope: Scope,
) -> Callable[[AuthContext], Coroutine[Any, Any, AuthContext]]:
    """Like ``require``, and also lets a customer token through: the route then calls
    ``auth.limit_to(customer)`` so the token reaches its own customer only."""

    async def check(context: AuthContext = Depends(authenticate)) -> AuthContext:
        if context.customer is None and not context.allows(scope):
            raise InsufficientScope(f"This key lacks the `{scope.value}` scope.")
        return context

    _TOKEN_GUARDS.add(check)
    return check


def require(
    scope: Scope, *alternatives: Scope
) -> Callable[[AuthContext], Coroutine[Any, Any, AuthContext]]:
    """A dependency that lets the call through only for keys with ``scope`` (or one of
    ``alternatives``, or admin)."""
    accepted = (scope, *alternatives)

    async def check(context: AuthContext = Depends(authenticate)) -> AuthContext:
        if not any(context.allows(s) for s in accepted):
            wanted = " or ".join(f"`{s.value}`" for s in accepted)
            raise InsufficientScope(f"This key lacks the {wanted} scope.")
        return context

    return check
