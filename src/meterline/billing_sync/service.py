"""Stripe sync's use cases: connect and disconnect, status, the report ledger and its
retries, syncing now, Stripe's webhooks, and the background jobs that tie it to the
outbox (the HTTP routes, the CLI and the job runner all call these).

Cadence (each configurable, see ``config.Settings``): closed hours are aggregated every
hour (re-reading the last day, so late events there go as deltas within the hour), every
hour Stripe still takes (35 days) is read again daily, failed reports are tried again
every 6 hours; ``sync`` does the full read now. Invoices mode follows the invoices:
``invoicing`` writes an ``invoice.finalized`` (or ``invoice.voided``) outbox job with
the change, and the handlers here turn it into a Stripe invoice report.
"""

from __future__ import annotations

import logging
import secrets
import string
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from meterline.billing_sync import sender, usage
from meterline.billing_sync.models import (
    StripeIntegration,
    StripeReport,
    StripeReportAttempt,
    StripeUsageSeries,
)
from meterline.billing_sync.schemas import (
    IntegrationPut,
    IntegrationRead,
    ReportRead,
    Unmapped,
)
from meterline.customers import service as customers
from meterline.db import Database, newest_page
from meterline.errors import Conflict, NotFound
from meterline.invoicing import service as invoicing
from meterline.jobs import service as jobs
from meterline.kit.ids import new_id
from meterline.kit.pagination import Page
from meterline.meters import service as meters
from meterline.webhooks import service as webhooks

log = logging.getLogger("meterline")

SYNC = "stripe.sync"
AGGREGATE = "stripe.aggregate"
REPORT = "stripe.report"
RETRY_FAILED = "stripe.retry_failed"


SKIPPED = "The customer has no stripe_customer_id."


class NotConnected(Conflict):
    code = "stripe_not_connected"
    title = "Stripe is not connected"
    default_detail = "Connect Stripe first: PUT /v1/integrations/stripe."


class WrongMode(Conflict):
    code = "stripe_wrong_mode"
    title = "Not in this mode"


# -- the integration ---------------------------------------------------------------------------


def _prefix() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "ml" + "".join(secrets.choice(alphabet) for _ in range(8))


def connect(session: Session, workspace_id: int, data: IntegrationPut, now: datetime) -> None:
    """Connect (or change the connection). Failed reports are tried again at once: a new
    key is the usual cure."""
    found = session.get(StripeIntegration, workspace_id, with_for_update=True)
    if found is None:
        found = StripeIntegration(workspace_id=workspace_id, identifier_prefix=_prefix())
        session.add(found)
    if found.status != "connected":
        found.connected_at = now
    found.status = "connected"
    found.mode = data.mode
    found.secret_key = data.secret_key
    found.webhook_secret = data.webhook_secret
    found.report_delay_minutes = data.report_delay_minutes
    found.updated_at = now
    found.last_error = found.last_error_at = None
    session.flush()
    retry_failed(session, workspace_id, now)
    _wake(session, workspace_id, now)


def disconnect(session: Session, workspace_id: int, now: datetime) -> None:
    """Stop talking to Stripe: secrets wiped; the ledger stays (pending reports wait)."""
    found = session.get(StripeIntegration, workspace_id, with_for_update=True)
    if found is None or found.status != "connected":
        raise NotConnected()
    found.status = "not_connected"
    found.secret_key = found.webhook_secret = None
    found.updated_at = now
    session.flush()


def is_connected(session: Session, workspace_id: int) -> bool:
    found = session.get(StripeIntegration, workspace_id)
    return found is not None and found.status == "connected"


def connected(session: Session, workspace_id: int) -> StripeIntegration:
    found = session.get(StripeIntegration, workspace_id)
    if found is None or found.status != "connected":
        raise NotConnected()
    return found


def status(session: Session, workspace_id: int, now: datetime) -> IntegrationRead:
    """What a dashboard shows: mode, health, the queue, the lag and what is unmapped."""
    found = session.get(StripeIntegration, workspace_id)
    count, examples = customers.stripe_unmapped(session, workspace_id, 20)
    unmapped = Unmapped(
        customers=count,
        customer_examples=examples,
        meters=meters.stripe_unmapped(session, workspace_id),
    )
    counts = report_counts(session, workspace_id)
    live = found is not None and found.status == "connected"
    return IntegrationRead(
        status="connected" if live else "not_connected",
        mode=found.mode if live and found is not None else None,
        secret_key_last4=found.secret_key[-4:] if found and found.secret_key else None,
        webhook_secret_set=bool(found and found.webhook_secret),
        report_delay_minutes=found.report_delay_minutes if found and live else None,
        connected_at=found.connected_at if found and live else None,
        last_reported_at=found.last_reported_at if found else None,
        aggregated_through=found.aggregated_through if found else None,
        pending=counts.get("pending", 0),
        failed=counts.get("failed", 0),
        lag_seconds=_lag(session, found, now) if found and live else None,
        excess=_excess(session, workspace_id),
        last_error=found.last_error if found else None,
        last_error_at=found.last_error_at if found else None,
        unmapped=unmapped,
    )


def report_counts(session: Session, workspace_id: int) -> dict[str, int]:
    """How many of the workspace's reports are in each status (absent: none)."""
    rows = session.execute(
        select(StripeReport.status, func.count())
        .where(StripeReport.workspace_id == workspace_id)
        .group_by(StripeReport.status)
    ).all()
    return {str(status): int(count) for status, count in rows}


def _lag(session: Session, found: StripeIntegration, now: datetime) -> int | None:
    pending = select(StripeReport).where(
        StripeReport.workspace_id == found.workspace_id,
        StripeReport.status.in_(("pending", "failed")),
        StripeReport.cancelled_by.is_(None),
    )
    if found.mode == "invoices":
        oldest = session.scalar(
            select(func.min(StripeReport.created_at)).where(pending.whereclause)  # type: ignore[arg-type]
        )
        return 0 if oldest is None else max(0, int((now - oldest).total_seconds()))
    oldest_hour = session.scalar(
        select(func.min(StripeReport.hour_start)).where(pending.whereclause)  # type: ignore[arg-type]
    )
    through = found.aggregated_through
    if oldest_hour is not None:
        through = oldest_hour if through is None else min(through, oldest_hour)
    return None if through is None else max(0, int((now - through).total_seconds()))


def _excess(session: Session, workspace_id: int) -> int:
    rows = session.scalars(
        select(StripeUsageSeries).where(StripeUsageSeries.workspace_id == workspace_id)
    ).all()
    if not rows:
        return 0
    divisors = {m.id: usage.divisor(m) for m in meters.stripe_mapped(session, workspace_id)}
    total = 0
    for row in rows:
        owed = int(row.measured // divisors.get(row.meter_id, 1)) if row.measured > 0 else 0
        total += max(0, row.sent - owed)
    return total


def _wake(session: Session, workspace_id: int, now: datetime) -> None:
    """Have the workspace's queues run now (after a connect or a retry)."""
    usage.schedule_send(session, workspace_id, now, sooner=True)
    for report in session.scalars(
        select(StripeReport).where(
            StripeReport.workspace_id == workspace_id,
            StripeReport.kind == "invoice",
            StripeReport.status == "pending",
        )
    ):
        sender.schedule_invoice(session, report, now)


# -- reports -----------------------------------------------------------------------------------


def reports(
    session: Session,
    workspace_id: int,
    *,
    status: str | None,
    customer: str | None,
    limit: int,
    after: str | None,
) -> Page[ReportRead]:
    """Newest first, each with every attempt."""
    query = select(StripeReport).where(StripeReport.workspace_id == workspace_id)
    if status is not None:
        query = query.where(StripeReport.status == status)
    if customer is not None:
        query = query.where(
            StripeReport.customer_id == customers.id_for_filter(session, workspace_id, customer)
        )
    page = newest_page(session, query, StripeReport.id, limit, after)
    return Page(to_reads(session, page.items), page.next_cursor)


def to_reads(session: Session, rows: list[StripeReport]) -> list[ReportRead]:
    attempts = webhooks.attempt_log(
        session, StripeReportAttempt.report_id, [row.id for row in rows]
    )
    names = customers.external_ids(session, {row.customer_id for row in rows})
    meter_keys = {
        m.id: m.key for m in meters.by_ids(session, {r.meter_id for r in rows if r.meter_id})
    }
    return [
        ReportRead(
            id=row.id,
            kind=row.kind,
            status=row.status,
            customer=names[row.customer_id],
            stripe_customer_id=row.stripe_customer_id,
            meter=meter_keys.get(row.meter_id or 0),
            event_name=row.event_name,
            hour_start=row.hour_start,
            revision=row.revision,
            identifier=row.identifier or row.progress.get("identifier"),
            value=row.value,
            cancels=row.cancels,
            cancelled_by=row.cancelled_by,
            invoice=row.invoice_id,
            stripe_invoice_id=row.progress.get("invoice"),
            attempts=attempts[row.id],
            next_attempt_at=row.next_attempt_at,
            last_error=row.last_error,
            error_report=row.error_report,
            created_at=row.created_at,
            sent_at=row.sent_at,
        )
        for row in rows
    ]


def retry(session: Session, workspace_id: int, report_id: str, now: datetime) -> ReportRead:
    """Try a pending or failed report again now, with a fresh retry period (its
    attempts stay logged); a sent one stays as it is."""
    found = session.scalar(select(StripeReport).where(StripeReport.id == report_id))
    if found is None or found.workspace_id != workspace_id:
        raise NotFound(f"No Stripe report {report_id!r}.")
    connected(session, workspace_id)
    if found.cancelled_by is not None:
        raise Conflict(f"Report {report_id!r} was cancelled by {found.cancelled_by}.")
    if found.status != "sent":
        _requeue(session, found, now)
    return to_reads(session, [found])[0]


def _requeue(session: Session, report: StripeReport, now: datetime) -> None:
    """Pending again from now, with a fresh retry period; its queue runs now."""
    report.status = "pending"
    report.next_attempt_at = now
    report.first_attempt_at = None
    session.flush()
    if report.kind == "invoice":
        sender.schedule_invoice(session, report, now)
    else:
        usage.schedule_send(session, report.workspace_id, now, sooner=True)


def retry_failed(session: Session, workspace_id: int, now: datetime) -> int:
    """Every failed report of the workspace goes again (meter events only while Stripe
    still takes their hour)."""
    oldest = usage.hour_floor(now - usage.OLDEST) + usage.HOUR
    done = session.execute(
        update(StripeReport)
        .where(
            StripeReport.workspace_id == workspace_id,
            StripeReport.status == "failed",
            StripeReport.cancelled_by.is_(None),
            (StripeReport.kind == "invoice") | (StripeReport.hour_start >= oldest),
        )
        .values(status="pending", next_attempt_at=now, first_attempt_at=None)
    )
    count: int = done.rowcount  # type: ignore[attr-defined]
    if count:
        _wake(session, workspace_id, now)
    return count


def sync(session: Session, workspace_id: int, now: datetime) -> str:
    """Report every closed hour now (or send what waits, in invoices mode): queued as a
    job, done by the job runner. Returns the mode."""
    found = connected(session, workspace_id)
    jobs.schedule(
        session,
        SYNC,
        f"stripe-sync:{workspace_id}",
        now,
        workspace_id=workspace_id,
        payload={"workspace": workspace_id},
    )
    return found.mode


def sync_now(db: Database, workspace_id: int, now: datetime) -> dict[str, int]:
    """``meterline stripe sync``: account for every closed hour and send what is due,
    in this process (what the job runner would do); counts of reports by status."""
    with db.write() as session:
        connected(session, workspace_id)
        usage.aggregate(session, workspace_id, now, full=True)
        waiting = list(
            session.scalars(
                select(StripeReport.id).where(
                    StripeReport.workspace_id == workspace_id,
                    StripeReport.kind == "invoice",
                    StripeReport.status == "pending",
                )
            )
        )
    for report_id in waiting:
        sender.send_invoice(db, report_id, now)
    send_due(db, workspace_id, now)
    with db.read() as session:
        return report_counts(session, workspace_id)


def send_due(db: Database, workspace_id: int, now: datetime) -> None:
    """Send the workspace's due meter events now, round after round (a retriable
    failure leaves the rest for the job runner, after its wait)."""
    for _ in range(10_000):
        following = sender.send_usage(db, workspace_id, now)
        if following is None or following > now:
            return


def sync_job(
    session: Session, job: jobs.Claimed, now: datetime, scratch: dict[Any, Any]
) -> datetime | None:
    workspace_id = int(job.payload["workspace"])
    usage.aggregate(session, workspace_id, now, full=True)
    _wake(session, workspace_id, now)
    return None


def _connected_ids(db: Database, mode: str | None = None) -> list[int]:
    with db.read() as session:
        query = select(StripeIntegration.workspace_id).where(
            StripeIntegration.status == "connected"
        )
        if mode is not None:
            query = query.where(StripeIntegration.mode == mode)
        return list(session.scalars(query))


def aggregate_all(db: Database, now: datetime, *, full: bool = False) -> int:
    """The hourly (and, with ``full``, daily) aggregation of every connected workspace,
    each in its own transaction."""
    written = 0
    for workspace_id in _connected_ids(db, "meter_events"):
        try:
            with db.write() as session:
                written += usage.aggregate(session, workspace_id, now, full=full)
        except Exception:  # one workspace's trouble never stops the others
            log.exception("Stripe aggregation of workspace %s failed", workspace_id)
    return written


def report_all(db: Database, now: datetime) -> int:
    return aggregate_all(db, now, full=True)


def retry_failed_all(db: Database, now: datetime) -> int:
    count = 0
    for workspace_id in _connected_ids(db):
        with db.write() as session:
            count += retry_failed(session, workspace_id, now)
    return count


# -- invoices mode -----------------------------------------------------------------------------


def _integration(
    session: Session, workspace_id: int, scratch: dict[Any, Any]
) -> StripeIntegration | None:
    key = ("stripe", workspace_id)
    if key not in scratch:
        scratch[key] = session.get(StripeIntegration, workspace_id)
    found: StripeIntegration | None = scratch[key]
    return found


def on_invoice_finalized(
    session: Session, job: jobs.Claimed, now: datetime, scratch: dict[Any, Any]
) -> datetime | None:
    """An invoice was finalized: in invoices mode, it becomes a Stripe invoice (a report
    and its job); a customer without a Stripe customer is skipped as ``failed`` (tried
    again with the other failed reports once it is mapped)."""
    invoice = invoicing.by_id(session, job.payload["invoice"])
    if invoice is None:
        return None
    found = _integration(session, invoice.workspace_id, scratch)
    if found is None or found.status != "connected" or found.mode != "invoices":
        return None
    if session.scalar(select(StripeReport.id).where(StripeReport.invoice_id == invoice.id)):
        return None
    stripe_customer = customers.stripe_customer_of(session, invoice.customer_id)
    report = StripeReport(
        id=new_id("srp"),
        workspace_id=invoice.workspace_id,
        kind="invoice",
        status="pending" if stripe_customer else "failed",
        customer_id=invoice.customer_id,
        stripe_customer_id=stripe_customer,
        invoice_id=invoice.id,
        identifier=f"{found.identifier_prefix}_{invoice.id}",
        progress={},
        attempts=0,
        next_attempt_at=now if stripe_customer else None,
        last_error=None if stripe_customer else SKIPPED,
        created_at=now,
    )
    session.add(report)
    session.flush()
    if stripe_customer:
        sender.schedule_invoice(session, report, now)
    return None


def on_invoice_voided(
    session: Session, job: jobs.Claimed, now: datetime, scratch: dict[Any, Any]
) -> datetime | None:
    """A finalized invoice was voided: its Stripe twin is voided too (the invoice's
    report goes again; its last step is the void)."""
    report = session.scalar(
        select(StripeReport).where(StripeReport.invoice_id == job.payload["invoice"])
    )
    if report is None or report.progress.get("voided"):
        return None
    found = _integration(session, report.workspace_id, scratch)
    if found is None or found.status != "connected":
        return None
    if report.status in ("sent", "pending"):  # a failed one goes with the failed ones
        _requeue(session, report, now)
    return None
