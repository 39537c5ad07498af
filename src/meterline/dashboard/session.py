"""Dashboard sign-in: a signed session cookie that names an API key, and CSRF tokens.

The cookie is ``v1.<payload>.<signature>``: the payload is base64url JSON ``{"w":
workspace id, "k": key id, "e": expiry (Unix seconds), "n": random nonce}``, signed with
HMAC-SHA256 under a key derived from the workspace's token secret (the one customer
tokens use, kept in the workspace row), so every ``serve`` process on the database
accepts every other's cookies and nothing needs configuring. It holds no secret: the
API key itself never leaves the sign-in request.

A session ends 12 hours after sign-in, or as soon as its key is revoked: each request
looks the key up (cached per process for ``METERLINE_CACHE_SECONDS``, cleared at once
when this process revokes a key). The scopes come from that lookup, not the cookie.

CSRF: every form carries ``HMAC(key, "csrf" + nonce)`` (or htmx sends it as the
``X-CSRF-Token`` header); the sign-in form, before any session, uses a double-submit
cookie. All cookies are HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from meterline.auth import service as auth_service
from meterline.auth.deps import cached_token_secret
from meterline.auth.scopes import Scope
from meterline.db import Database
from meterline.errors import Forbidden, InvalidApiKey, invalid
from meterline.kit.cache import TTLCache
from meterline.workspaces import service as workspaces

SESSION_COOKIE = "meterline_session"
LOGIN_COOKIE = "meterline_signin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LIFETIME = timedelta(hours=12)
_VERSION = "v1"
_LABEL = b"meterline dashboard session v1"


class CsrfRefused(Forbidden):
    code = "csrf_failed"
    title = "Form expired"
    default_detail = "The form's security token is missing or stale: reload the page and retry."


class ReadOnlySession(Forbidden):
    code = "read_only_session"
    title = "Read-only session"
    default_detail = "This session's key has the read scope only: it cannot change anything."


@dataclass(frozen=True)
class DashboardSession:
    workspace_id: int
    key_id: str
    scopes: frozenset[Scope]
    csrf: str
    expires_at: datetime

    @property
    def can_write(self) -> bool:
        return Scope.ADMIN in self.scopes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signing_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _LABEL, hashlib.sha256).digest()


def _mac(secret: str, message: str) -> str:
    return _b64(hmac.new(_signing_key(secret), message.encode(), hashlib.sha256).digest())


def seal(secret: str, workspace_id: int, key_id: str, expires_at: datetime, nonce: str) -> str:
    payload = _b64(
        orjson.dumps({"w": workspace_id, "k": key_id, "e": int(expires_at.timestamp()), "n": nonce})
    )
    return f"{_VERSION}.{payload}.{_mac(secret, payload)}"


def csrf_token(secret: str, nonce: str) -> str:
    return _mac(secret, "csrf" + nonce)


def sign_in(db: Database, api_key: str, now: datetime) -> tuple[str, datetime]:
    """The session cookie for an ``admin`` or ``read`` key, and when it ends; 422 with
    the reason otherwise (the form shows it by the field)."""
    api_key = api_key.strip()
    if not api_key:
        raise invalid("api_key", "missing_field", "Paste an API key (ml_…).")
    try:
        with db.read() as session:
            # Signing in is not an API request: no rate applies to it.
            context, _ = auth_service.authenticate(session, api_key, default_rate=None)
    except InvalidApiKey as exc:
        raise invalid("api_key", "invalid_api_key", "This key is unknown or revoked.") from exc
    if not context.scopes & {Scope.ADMIN, Scope.READ}:
        raise invalid(
            "api_key",
            "insufficient_scope",
            "This key cannot open the dashboard: it needs the admin or read scope.",
        )
    with db.write() as session:
        secret = workspaces.token_secret(session, context.workspace_id, create=True)
    assert secret is not None  # made just now when missing
    expires_at = now + LIFETIME
    nonce = secrets.token_urlsafe(16)
    return seal(secret, context.workspace_id, context.key_id, expires_at, nonce), expires_at


def resolve(
    cookie: str | None, cache: TTLCache[Any, Any], db: Database, now: datetime
) -> DashboardSession | None:
    """The session a cookie stands for; None when it is missing, altered, expired, or
    its key is revoked."""
    if not cookie:
        return None
    version, _, rest = cookie.partition(".")
    payload, _, signature = rest.partition(".")
    if version != _VERSION:
        return None
    try:
        claims = orjson.loads(_unb64(payload))
        workspace_id, key_id = int(claims["w"]), str(claims["k"])
        expires, nonce = int(claims["e"]), str(claims["n"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
    secret = cached_token_secret(cache, db, workspace_id)
    if secret is None or not hmac.compare_digest(_mac(secret, payload), signature):
        return None
    expires_at = datetime.fromtimestamp(expires, UTC)
    if expires_at <= now:
        return None

    def load() -> frozenset[Scope] | None:
        with db.read() as session:
            return auth_service.key_scopes(session, workspace_id, key_id)

    scopes: frozenset[Scope] | None = cache.get_or_load(("dashboard-key", key_id), load)
    if scopes is None:
        return None
    return DashboardSession(workspace_id, key_id, scopes, csrf_token(secret, nonce), expires_at)


def check_csrf(session: DashboardSession, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(sent, session.csrf):
        raise CsrfRefused()


def may_write(session: DashboardSession) -> None:
    if not session.can_write:
        raise ReadOnlySession()
