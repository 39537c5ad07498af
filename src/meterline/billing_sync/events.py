"""Stripe's webhooks (``POST /v1/integrations/stripe/webhook``): checked with the
``stripe`` package's signature check against each connected workspace's webhook secret;
``invoice.paid`` / ``invoice.payment_failed`` set an invoice's payment status, and
``v1.billing.meter.error_report_triggered`` (a thin event: its details are fetched from
Stripe by a job) marks the meter events it names."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.billing_sync.models import StripeIntegration, StripeReport
from meterline.billing_sync.schemas import WebhookReceived
from meterline.billing_sync.stripe_client import Failure, Stripe, verify_webhook
from meterline.db import Database
from meterline.errors import BadRequest
from meterline.invoicing import service as invoicing
from meterline.jobs import service as jobs

log = logging.getLogger("meterline")

EVENT = "stripe.event"


class InvalidSignature(BadRequest):
    code = "invalid_signature"
    title = "Invalid signature"
    default_detail = "The Stripe-Signature header does not sign this body with any webhook secret."


def webhook(db: Database, payload: bytes, signature: str | None, now: datetime) -> WebhookReceived:
    """A Stripe webhook: checked with the ``stripe`` package against each connected
    workspace's webhook secret (400 ``invalid_signature`` when none signs it; nothing
    changes), then ``invoice.paid`` / ``invoice.payment_failed`` set the invoice's
    payment status and ``v1.billing.meter.error_report_triggered`` is recorded on the
    reports it names (its details fetched from Stripe by a job)."""
    workspace_id = _signed_for(db, payload, signature)
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("The webhook body is not JSON.") from exc
    if not isinstance(event, dict):
        raise BadRequest("The webhook body is not a Stripe event.")
    kind = str(event.get("type", ""))
    with db.write() as session:
        if kind in ("invoice.paid", "invoice.payment_failed"):
            obj = _dict(_dict(event.get("data")).get("object"))
            invoice = invoicing.by_stripe_id(session, workspace_id, str(obj.get("id")))
            if invoice is None:
                return WebhookReceived(type=kind, handled=False)
            invoicing.set_stripe(
                session,
                invoice,
                stripe_status=obj.get("status"),
                payment_status="paid" if kind == "invoice.paid" else "failed",
            )
            return WebhookReceived(type=kind, handled=True)
        if kind == "v1.billing.meter.error_report_triggered":
            if event.get("data"):
                record_error_report(session, workspace_id, event)
            else:  # a thin event: its details are fetched from Stripe, outside this request
                jobs.schedule(
                    session,
                    EVENT,
                    f"stripe-event:{event.get('id')}",
                    now,
                    workspace_id=workspace_id,
                    payload={"workspace": workspace_id, "event": event.get("id")},
                )
            return WebhookReceived(type=kind, handled=True)
    return WebhookReceived(type=kind, handled=False)


def _dict(value: Any) -> dict[str, Any]:
    """A JSON object of Stripe's, or an empty one for anything else (never a 500)."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _signed_for(db: Database, payload: bytes, signature: str | None) -> int:
    """The workspace whose webhook secret signs ``payload`` (400 if none does)."""
    with db.read() as session:
        candidates = list(
            session.execute(
                select(StripeIntegration.workspace_id, StripeIntegration.webhook_secret).where(
                    StripeIntegration.status == "connected",
                    StripeIntegration.webhook_secret.is_not(None),
                )
            )
        )
    for workspace_id, secret in candidates:
        if verify_webhook(payload, signature, secret or ""):
            return int(workspace_id)
    raise InvalidSignature()


def record_error_report(session: Session, workspace_id: int, event: dict[str, Any]) -> int:
    """Mark the meter events an error report names: ``failed``, with Stripe's words
    (their units are not at Stripe: a reconciliation shows them and ``--repair``
    sends them again)."""
    reason = _dict(_dict(event.get("data")).get("reason"))
    named: dict[str, str] = {}
    for error_type in map(_dict, _list(reason.get("error_types"))):
        for sample in map(_dict, _list(error_type.get("sample_errors"))):
            identifier = _dict(sample.get("request")).get("identifier")
            if isinstance(identifier, str) and identifier:
                named[identifier] = f"{error_type.get('code')}: {sample.get('error_message')}"
    if not named:
        return 0
    rows = session.scalars(
        select(StripeReport).where(
            StripeReport.workspace_id == workspace_id, StripeReport.identifier.in_(named)
        )
    )
    count = 0
    for report in rows:
        report.error_report = named[report.identifier or ""][:1000]
        report.status = "failed"
        report.last_error = report.error_report
        count += 1
    session.flush()
    return count


def event_job(db: Database, job: jobs.Claimed, now: datetime) -> datetime | None:
    """Fetch a thin event's details from Stripe, then record them."""
    workspace_id = int(job.payload["workspace"])
    with db.read() as session:
        found = session.get(StripeIntegration, workspace_id)
    if found is None or not found.secret_key:
        return None
    try:
        event = Stripe(found.secret_key, db.settings).fetch_event(str(job.payload["event"]))
    except Failure as failure:
        if failure.retriable:
            raise  # the job runner retries it with its backoff
        log.warning("Stripe event %s could not be fetched: %s", job.payload["event"], failure)
        return None
    with db.write() as session:
        record_error_report(session, workspace_id, event)
    return None
