"""The sending half: reports go to Stripe from the job runner, outside any transaction,
and each answer is recorded afterwards in a short one.

A workspace's meter events go in the order they were decided (``seq``): a retriable
failure (no answer, 409, 429, 5xx) stops the round, and that report — with everything
after it — waits for its retry (Stripe's ``Retry-After``, else 2 s doubling to 15
minutes, jittered), so order is never lost. Retries go on for ``RETRY_FOR``, then the
report is ``failed``; Stripe's other 4xx fail it at once with Stripe's message. A crash
after Stripe took an event and before the answer was recorded leaves the report pending:
it goes again with the same identifier, which Stripe refuses as a duplicate — recorded
as delivered. Many due events go through the v2 meter event stream, 100 a request.

An invoice goes step by step (create, one item per line, finalize, and void when
Meterline's invoice is void), each step with its own fixed idempotency key and its
progress recorded before the next, so a retry or a crash never makes a second invoice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.billing_sync import deltas, usage
from meterline.billing_sync.models import (
    StripeIntegration,
    StripeReport,
    StripeReportAttempt,
    StripeUsageHour,
    StripeUsageSeries,
)
from meterline.billing_sync.stripe_client import STREAM_BATCH, Failure, MeterEvent, Stripe
from meterline.customers import service as customers
from meterline.db import Database
from meterline.invoicing import service as invoicing
from meterline.jobs import service as jobs
from meterline.kit.money import exponent

SEND = usage.SEND
INVOICE = "stripe.invoice"
RETRY_FOR = timedelta(days=3)
STREAM_FROM = 20  # this many due meter events or more go through the v2 stream
ROUND = 500  # reports per run of the send job (it runs again at once while more are due)
METER_KINDS = ("meter_event", "meter_event_cancel")


@dataclass
class Outcome:
    report: str
    failure: Failure | None
    latency_ms: int
    note: str | None = None


def _timed(call: Callable[[], object]) -> tuple[Failure | None, int]:
    started = time.perf_counter()
    try:
        call()
        failure = None
    except Failure as found:
        failure = found
    return failure, round((time.perf_counter() - started) * 1000)


# -- meter events ------------------------------------------------------------------------------


def send_job(db: Database, job: jobs.Claimed, now: datetime) -> datetime | None:
    """The ``stripe.send`` job: one round of a workspace's due meter events."""
    return send_usage(db, int(job.payload["workspace"]), now)


def send_usage(db: Database, workspace_id: int, now: datetime) -> datetime | None:
    """Send the workspace's due meter events, in order; returns when the job is due
    again (None: nothing left to send)."""
    with db.read() as session:
        integration = session.get(StripeIntegration, workspace_id)
        if integration is None or integration.status != "connected" or not integration.secret_key:
            return None
        queue = list(
            session.scalars(
                select(StripeReport)
                .where(
                    StripeReport.workspace_id == workspace_id,
                    StripeReport.status == "pending",
                    StripeReport.kind.in_(METER_KINDS),
                )
                .order_by(StripeReport.seq)
                .limit(ROUND)
            )
        )
        targets = {
            r.id: r
            for r in session.scalars(
                select(StripeReport).where(
                    StripeReport.id.in_({r.cancels for r in queue if r.cancels})
                )
            )
        }
    if not queue:
        return None
    if queue[0].next_attempt_at is not None and queue[0].next_attempt_at > now:
        return queue[0].next_attempt_at
    due = []
    for report in queue:
        if report.next_attempt_at is not None and report.next_attempt_at > now:
            break
        due.append(report)
    client = Stripe(integration.secret_key, db.settings)
    if due[0].kind == "meter_event_cancel":
        outcomes = [_cancel(client, due[0], targets.get(due[0].cancels or ""))]
    else:
        events = []
        for report in due:
            if report.kind != "meter_event":
                break
            events.append(report)
        outcomes = _send_events(client, events)
    return record(db, workspace_id, outcomes, now)


def _event(report: StripeReport) -> MeterEvent:
    assert report.identifier
    assert report.event_name
    assert report.stripe_customer_id
    assert report.hour_start is not None
    assert report.value is not None
    return MeterEvent(
        report.identifier,
        report.event_name,
        report.stripe_customer_id,
        report.value,
        report.hour_start,
    )


def _send_events(client: Stripe, reports: list[StripeReport]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    if len(reports) >= STREAM_FROM:
        for start in range(0, len(reports), STREAM_BATCH):
            chunk = reports[start : start + STREAM_BATCH]
            events = [_event(r) for r in chunk]
            failure, latency = _timed(partial(client.stream, events))
            outcomes.extend(Outcome(r.id, failure, latency, "v2 stream") for r in chunk)
            if failure is not None and failure.retriable:
                break
        return outcomes
    for report in reports:
        event = _event(report)
        failure, latency = _timed(partial(client.send_event, event))
        outcomes.append(Outcome(report.id, failure, latency))
        if failure is not None and failure.retriable:
            break
    return outcomes


def _cancel(client: Stripe, cancel: StripeReport, target: StripeReport | None) -> Outcome:
    if target is None or target.status == "failed":
        return Outcome(cancel.id, None, 0, "the event never reached Stripe: nothing to cancel")
    identifier = str(cancel.progress.get("identifier"))
    failure, latency = _timed(
        partial(client.cancel_event, str(cancel.event_name), identifier, cancel.id)
    )
    return Outcome(cancel.id, failure, latency)


def record(
    db: Database, workspace_id: int, outcomes: list[Outcome], now: datetime
) -> datetime | None:
    """Write what Stripe answered; returns when the workspace's queue is next due."""
    with db.write() as session:
        integration = session.get(StripeIntegration, workspace_id)
        reports = {
            r.id: r
            for r in session.scalars(
                select(StripeReport).where(StripeReport.id.in_([o.report for o in outcomes]))
            )
        }
        jitter = random.uniform(0, 0.2)
        for outcome in outcomes:
            report = reports[outcome.report]
            if report.status != "pending":
                continue
            _attempt(session, report, outcome, now)
            failure = outcome.failure
            if failure is None or failure.duplicate:
                report.status, report.sent_at, report.next_attempt_at = "sent", now, None
                report.last_error = None
                if integration is not None:
                    integration.last_reported_at = now
                continue
            _failed(report, failure, now, jitter)
            if integration is not None:
                integration.last_error = f"{report.kind} {report.id}: {failure.message}"[:1000]
                integration.last_error_at = now
            if report.status == "failed" and report.kind == "meter_event_cancel":
                _restore(session, report)
        session.flush()
        head = session.scalar(
            select(StripeReport.next_attempt_at)
            .where(
                StripeReport.workspace_id == workspace_id,
                StripeReport.status == "pending",
                StripeReport.kind.in_(METER_KINDS),
            )
            .order_by(StripeReport.seq)
            .limit(1)
        )
    return None if head is None else max(head, now)


def _attempt(session: Session, report: StripeReport, outcome: Outcome, now: datetime) -> None:
    failure = outcome.failure
    error = None if failure is None else failure.message
    if failure is not None and failure.duplicate:
        error = f"already at Stripe (delivered): {failure.message}"
    elif outcome.note:
        error = outcome.note if failure is None else f"{outcome.note}: {error}"
    session.add(
        StripeReportAttempt(
            report_id=report.id,
            at=now,
            status_code=200 if failure is None else failure.status,
            latency_ms=outcome.latency_ms,
            error=None if error is None else error[:1000],
        )
    )
    report.attempts += 1
    report.first_attempt_at = report.first_attempt_at or now


def _failed(report: StripeReport, failure: Failure, now: datetime, jitter: float) -> None:
    """Retry later (retriable, within ``RETRY_FOR``), or give up."""
    report.last_error = failure.message[:1000]
    first = report.first_attempt_at or now
    if failure.retriable and now - first < RETRY_FOR:
        wait = deltas.retry_delay(report.attempts, failure.retry_after, jitter)
        report.next_attempt_at = now + wait
        return
    report.status, report.next_attempt_at = "failed", None


def _restore(session: Session, cancel: StripeReport) -> None:
    """Stripe refused the cancellation: its event still counts there."""
    target = session.scalar(select(StripeReport).where(StripeReport.id == cancel.cancels))
    if target is None or target.hour_start is None or target.meter_id is None:
        return
    target.cancelled_by = None
    value = target.value or 0
    hour = session.get(StripeUsageHour, (target.customer_id, target.meter_id, target.hour_start))
    if hour is not None:
        hour.sent += value
    series = session.get(StripeUsageSeries, (target.customer_id, target.meter_id))
    if series is not None:
        series.sent += value


# -- invoices ------------------------------------------------------------------------------------


def schedule_invoice(session: Session, report: StripeReport, now: datetime) -> None:
    jobs.schedule(
        session,
        INVOICE,
        f"stripe-invoice:{report.id}",
        now,
        workspace_id=report.workspace_id,
        payload={"report": report.id},
    )


@dataclass
class _InvoiceWork:
    report: StripeReport
    secret_key: str
    invoice: Any
    lines: list[dict[str, Any]]


def invoice_job(db: Database, job: jobs.Claimed, now: datetime) -> datetime | None:
    """The ``stripe.invoice`` job: take one invoice as far as it can go."""
    return send_invoice(db, str(job.payload["report"]), now)


def send_invoice(db: Database, report_id: str, now: datetime) -> datetime | None:
    """Take one invoice as far as it can go; returns when to try again (None: done or
    given up)."""
    with db.read() as session:
        report = session.scalar(select(StripeReport).where(StripeReport.id == report_id))
        if report is None or report.status != "pending" or report.invoice_id is None:
            return None
        if report.next_attempt_at is not None and report.next_attempt_at > now:
            return report.next_attempt_at
        integration = session.get(StripeIntegration, report.workspace_id)
        invoice = invoicing.by_id(session, report.invoice_id)
        # The customer's Stripe customer as it is now (it may have been mapped since).
        stripe_customer = report.stripe_customer_id or customers.stripe_customer_of(
            session, report.customer_id
        )
    if integration is None or integration.status != "connected" or not integration.secret_key:
        return None
    assert invoice is not None  # a foreign key
    work = _InvoiceWork(report, integration.secret_key, invoice, list(invoice.lines))
    client = Stripe(work.secret_key, db.settings)
    started = time.perf_counter()
    try:
        if stripe_customer is None:
            raise Failure(None, "The customer has no stripe_customer_id.", retriable=False)
        report.stripe_customer_id = stripe_customer
        _invoice_steps(db, client, work, now)
    except Failure as failure:
        latency = round((time.perf_counter() - started) * 1000)
        return _invoice_failed(db, report.id, failure, latency, now)
    latency = round((time.perf_counter() - started) * 1000)
    with db.write() as session:
        found = session.scalar(select(StripeReport).where(StripeReport.id == report.id))
        assert found is not None
        _attempt(session, found, Outcome(found.id, None, latency), now)
        found.status, found.sent_at, found.next_attempt_at, found.last_error = (
            "sent",
            now,
            None,
            None,
        )
        integration_row = session.get(StripeIntegration, found.workspace_id)
        if integration_row is not None:
            integration_row.last_reported_at = now
    return None


def _invoice_steps(db: Database, client: Stripe, work: _InvoiceWork, now: datetime) -> None:
    invoice, report = work.invoice, work.report
    progress = dict(report.progress)
    key = report.identifier
    currency = invoice.currency.lower()
    places = exponent(invoice.currency) or 0
    period = {
        "start": int(invoice.period_start.timestamp()),
        "end": int(invoice.period_end.timestamp()),
    }
    if "invoice" not in progress and invoice.status == "void":
        return  # voided before it reached Stripe: nothing to make there
    if "invoice" not in progress:
        created = client.create_invoice(_twin(invoice, report, currency), f"{key}-invoice")
        progress["invoice"] = created["id"]
        _progress(
            db,
            report.id,
            progress,
            stripe_status=created.get("status"),
            payment="unpaid",
            stripe_customer=report.stripe_customer_id,
        )
    for index in range(int(progress.get("items", 0)), len(work.lines)):
        line = work.lines[index]
        client.add_item(
            {
                "customer": report.stripe_customer_id,
                "invoice": progress["invoice"],
                "amount": deltas.minor_units(Decimal(line["amount"]), places),
                "currency": currency,
                "description": _line_description(line),
                "period": _line_period(line, period),
                "metadata": {"meterline_invoice": invoice.id, "line": str(index)},
            },
            f"{key}-item-{index}",
        )
        progress["items"] = index + 1
        _progress(db, report.id, progress)
    if not progress.get("finalized"):
        done = client.finalize(progress["invoice"], f"{key}-finalize")
        progress["finalized"] = True
        paid = "paid" if done.get("status") == "paid" else "unpaid"
        _progress(db, report.id, progress, stripe_status=done.get("status"), payment=paid)
    with db.read() as session:
        voided = (invoicing.by_id(session, invoice.id) or invoice).status == "void"
    if voided and not progress.get("voided"):
        done = client.void(progress["invoice"], f"{key}-void")
        progress["voided"] = True
        _progress(db, report.id, progress, stripe_status=done.get("status"))


def _twin(invoice: Any, report: StripeReport, currency: str) -> dict[str, Any]:
    """The Stripe invoice's parameters: a draft for the customer (Meterline finalizes it
    once its items are in), its number and period in the description and metadata."""
    period = f"{invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d}"
    return {
        "customer": report.stripe_customer_id,
        "currency": currency,
        "auto_advance": False,
        "collection_method": "charge_automatically",
        "pending_invoice_items_behavior": "exclude",
        "description": f"Meterline {invoice.number} ({period})",
        "metadata": {
            "meterline_invoice": invoice.id,
            "meterline_number": invoice.number or "",
            "period_start": invoice.period_start.isoformat(),
            "period_end": invoice.period_end.isoformat(),
        },
    }


def _line_description(line: dict[str, Any]) -> str:
    if line.get("type") == "usage":
        unit = line.get("unit") or "units"
        return f"{line.get('feature')}: {line.get('quantity')} {unit} (of {line.get('used')} used)"
    return str(line.get("description") or "Base fee")


def _line_period(line: dict[str, Any], period: dict[str, int]) -> dict[str, int]:
    if line.get("start") and line.get("end"):
        return {
            "start": int(datetime.fromisoformat(line["start"]).timestamp()),
            "end": int(datetime.fromisoformat(line["end"]).timestamp()),
        }
    return period


def _progress(
    db: Database,
    report_id: str,
    progress: dict[str, Any],
    *,
    stripe_status: str | None = None,
    payment: str | None = None,
    stripe_customer: str | None = None,
) -> None:
    """How far the invoice came, kept before the next step (and on the invoice)."""
    with db.write() as session:
        report = session.scalar(select(StripeReport).where(StripeReport.id == report_id))
        assert report is not None
        report.progress = dict(progress)
        report.stripe_customer_id = stripe_customer or report.stripe_customer_id
        invoice = invoicing.by_id(session, report.invoice_id or "")
        if invoice is not None:
            invoicing.set_stripe(
                session,
                invoice,
                stripe_invoice_id=progress.get("invoice"),
                stripe_status=stripe_status,
                payment_status=payment,
            )


def _invoice_failed(
    db: Database, report_id: str, failure: Failure, latency: int, now: datetime
) -> datetime | None:
    with db.write() as session:
        report = session.scalar(select(StripeReport).where(StripeReport.id == report_id))
        assert report is not None
        _attempt(session, report, Outcome(report.id, failure, latency), now)
        _failed(report, failure, now, random.uniform(0, 0.2))
        integration = session.get(StripeIntegration, report.workspace_id)
        if integration is not None:
            integration.last_error = f"invoice {report.id}: {failure.message}"[:1000]
            integration.last_error_at = now
        return report.next_attempt_at
