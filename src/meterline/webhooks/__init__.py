"""Webhooks: ``verify`` is for receivers (``meterline.webhooks.verify(secret, headers,
body)``); the sending side lives in ``webhooks.service``."""

from meterline.webhooks.signing import WebhookVerificationError, verify

__all__ = ["WebhookVerificationError", "verify"]
