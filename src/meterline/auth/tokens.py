"""Customer tokens (SPEC §5): short-lived, signed, for one customer, for a browser.

``mlct_<payload>.<signature>``: the payload is base64url JSON ``{"w": workspace id,
"c": customer external id, "e": expiry (Unix seconds)}``, the signature base64url
HMAC-SHA256 of the payload under the workspace's token secret (made on first use, kept
in the workspace row; every process reads the same one). Nothing is stored per token:
a token is valid until it expires (24 hours at most).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from meterline.errors import Unauthorized

PREFIX = "mlct_"
MAX_TTL_SECONDS = 86_400


class InvalidToken(Unauthorized):
    code = "invalid_token"
    title = "Invalid customer token"
    default_detail = "The customer token is malformed or its signature does not match."


class TokenExpired(Unauthorized):
    code = "token_expired"
    title = "Customer token expired"
    default_detail = "The customer token has expired: ask your server for a new one."


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def issue(secret: str, workspace_id: int, customer: str, expires_at: datetime) -> str:
    payload = _b64(
        orjson.dumps({"w": workspace_id, "c": customer, "e": int(expires_at.timestamp())})
    )
    return f"{PREFIX}{payload}.{_sign(secret, payload)}"


def verify(token: str, secret_of: Callable[[int], str | None], now: datetime) -> tuple[int, str]:
    """(workspace id, customer external id) of a valid token; 401 ``invalid_token`` or
    ``token_expired`` otherwise."""
    payload, _, signature = token.removeprefix(PREFIX).partition(".")
    try:
        claims = orjson.loads(_unb64(payload))
        workspace_id, customer, expires = int(claims["w"]), str(claims["c"]), int(claims["e"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidToken() from exc
    secret = secret_of(workspace_id)
    if secret is None or not hmac.compare_digest(_sign(secret, payload), signature):
        raise InvalidToken()
    if datetime.fromtimestamp(expires, UTC) <= now:
        raise TokenExpired()
    return workspace_id, customer


def expiry(token: str) -> datetime | None:
    """When a token (already verified) expires."""
    payload = token.removeprefix(PREFIX).partition(".")[0]
    try:
        return datetime.fromtimestamp(int(orjson.loads(_unb64(payload))["e"]), UTC)
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
