"""Our signatures against the reference implementation (the `standardwebhooks`
package), both ways: it verifies what we send, and `meterline.webhooks.verify` accepts
what it signs and refuses what is tampered with, stale, or signed by another secret."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as RefusedByReference

from meterline.webhooks import WebhookVerificationError, verify
from meterline.webhooks.signing import new_secret, sign

BODY = '{"type":"usage.limit_reached","timestamp":"2026-11-21T10:00:00Z","data":{"used":"10"}}'


def headers(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_the_reference_verifies_what_we_sign() -> None:
    secret, other = new_secret(), new_secret()
    now = int(time.time())
    signed = headers("msg_1", now, sign([secret], "msg_1", now, BODY))
    assert Webhook(secret).verify(BODY, signed)["data"] == {"used": "10"}
    with pytest.raises(RefusedByReference):
        Webhook(other).verify(BODY, signed)
    with pytest.raises(RefusedByReference):
        Webhook(secret).verify(BODY.replace("10", "11"), signed)
    # During a rotation both secrets sign: a receiver with either one accepts.
    both = headers("msg_2", now, sign([other, secret], "msg_2", now, BODY))
    assert Webhook(secret).verify(BODY, both)
    assert Webhook(other).verify(BODY, both)


def test_we_verify_what_the_reference_signs() -> None:
    secret = new_secret()
    now = datetime.now(UTC)
    signature = Webhook(secret).sign("msg_3", now, BODY)
    signed = headers("msg_3", int(now.timestamp()), signature)
    assert verify(secret, signed, BODY.encode())["type"] == "usage.limit_reached"
    upper = {key.title(): value for key, value in signed.items()}  # header names any case
    assert verify(secret, upper, BODY)["data"]["used"] == "10"
    with pytest.raises(WebhookVerificationError, match="no signature"):
        verify(secret, signed, BODY.replace("10", "99"))
    with pytest.raises(WebhookVerificationError, match="no signature"):
        verify(new_secret(), signed, BODY)
    with pytest.raises(WebhookVerificationError, match="too far"):
        verify(secret, signed, BODY, now=now.timestamp() + 301)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(secret, {"webhook-id": "msg_3"}, BODY)
