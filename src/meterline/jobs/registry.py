"""Every kind of background work Meterline does, and how often the sweeps run."""

from __future__ import annotations

from datetime import datetime

from meterline.billing_sync import events as stripe_events
from meterline.billing_sync import sender as stripe_sender
from meterline.billing_sync import service as stripe
from meterline.config import Settings
from meterline.credits import service as credits
from meterline.db import Database
from meterline.entitlements import alerting as alerts
from meterline.entitlements import reservations
from meterline.invoicing import service as invoicing
from meterline.jobs.service import Registry, Runner
from meterline.kit.periodic import Periodic
from meterline.recording import pipeline
from meterline.subscriptions.service import CYCLE
from meterline.webhooks import service as webhooks

RESERVATION_SWEEP_SECONDS = 15.0
RETENTION_SWEEP_SECONDS = 3600.0


def _expire_credits(db: Database, now: datetime) -> None:
    credits.sweep(db, now, allocations=False)


def _allocate_credits(db: Database, now: datetime) -> None:
    credits.sweep(db, now)


def registry(settings: Settings) -> Registry:
    found = Registry(
        work={
            CYCLE: invoicing.cycle,
            invoicing.FINALIZE: invoicing.finalize_job,
            # What follows an invoice's finalization or voiding: its Stripe twin.
            invoicing.FINALIZED: stripe.on_invoice_finalized,
            invoicing.VOIDED: stripe.on_invoice_voided,
            stripe.SYNC: stripe.sync_job,
        },
        io={
            alerts.EVALUATE: alerts.evaluate,
            webhooks.DELIVER: webhooks.deliver,
            stripe_sender.SEND: stripe_sender.send_job,
            stripe_sender.INVOICE: stripe_sender.invoice_job,
            stripe_events.EVENT: stripe_events.event_job,
        },
        parallel={webhooks.DELIVER, stripe_sender.SEND, stripe_sender.INVOICE, stripe_events.EVENT},
        maintenance={
            "reservations.expire": (RESERVATION_SWEEP_SECONDS, reservations.expire_due),
            "events.retention": (RETENTION_SWEEP_SECONDS, pipeline.purge_expired),
        },
    )
    stripe_cadence = (
        (stripe.AGGREGATE, settings.stripe_aggregate_seconds, stripe.aggregate_all),
        (stripe.REPORT, settings.stripe_report_seconds, stripe.report_all),
        (stripe.RETRY_FAILED, settings.stripe_retry_failed_seconds, stripe.retry_failed_all),
    )
    for name, seconds, handler in stripe_cadence:
        if seconds > 0:
            found.maintenance[name] = (seconds, handler)
    if settings.credit_sweep_seconds > 0:
        # Subscribed customers get their allocation from the billing cycle at each
        # period start; this sweep also covers customers on the default plan.
        found.maintenance["credits.expire"] = (settings.credit_sweep_seconds, _expire_credits)
        found.maintenance["credits.allocate"] = (
            settings.credit_sweep_seconds * 4,
            _allocate_credits,
        )
    return found


def runner(db: Database, settings: Settings) -> Runner:
    return Runner(db, registry(settings))


def job_thread(db: Database, settings: Settings) -> Periodic:
    """Background jobs on a thread of ``meterline serve``: every due job, each poll."""
    found = runner(db, settings)
    ensured = False

    def run() -> None:
        nonlocal ensured
        if not ensured:  # here, not at start-up: a database down then is retried
            found.ensure_maintenance()
            ensured = True
        found.drain()

    return Periodic("jobs", settings.jobs_poll_seconds, run)
