"""Standard Webhooks signatures (https://www.standardwebhooks.com): pure, no I/O.

A message is signed as ``base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))`` where
the key is the base64 part of a ``whsec_`` secret; the ``webhook-signature`` header
holds ``v1,<signature>`` for each secret in use, space-separated (two for a day after a
rotation). Receivers check one of them matches and that the timestamp is recent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as random
import time
from collections.abc import Mapping
from typing import Any

PREFIX = "whsec_"
TOLERANCE_SECONDS = 300


class WebhookVerificationError(Exception):
    """The message is not from the holder of the secret, or is too old (or new)."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(random.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def sign(secrets: list[str], msg_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header: one ``v1,…`` per secret."""
    return " ".join(signature(secret, msg_id, timestamp, body) for secret in secrets)


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance_seconds: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> Any:
    """Check a received webhook and return its parsed JSON body; raise
    ``WebhookVerificationError`` when the signature does not match ``secret`` or the
    timestamp is more than ``tolerance_seconds`` away from now."""
    lower = {key.lower(): value for key, value in headers.items()}
    msg_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not a number") from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookVerificationError("webhook-timestamp is too far from now")
    text = body.decode() if isinstance(body, bytes) else body
    expected = signature(secret, msg_id, timestamp, text)
    if not any(hmac.compare_digest(expected, given) for given in signatures.split(" ")):
        raise WebhookVerificationError("no signature matches")
    return json.loads(text)
