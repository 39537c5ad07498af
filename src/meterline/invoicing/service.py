"""Invoices: each subscription's closed periods, numbered without gaps per workspace.

A subscription's billing cycle is one job (``subscriptions.service.CYCLE``, written
when the subscription is created, changed or canceled). When it runs it closes every
period that has ended: an invoice is made from the period's statement (base fees
prorated, each priced feature rated), finalized at once or, with a workspace grace
period, left ``draft`` until the grace ends so late events still count; then the
period's credit allocation is granted and the job is due again at the next period end.

Finalizing refreshes a draft from the meters, takes the workspace's next number and
freezes it: a finalized invoice never changes again (late events stay counted in usage
views and are shown on the invoice as ``late_usage``); ``void`` only marks it void.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meterline.credits import service as credits
from meterline.customers import service as customers
from meterline.db import dialect_insert, get_owned, newest_page
from meterline.entitlements import service as entitlements
from meterline.errors import Conflict
from meterline.invoicing.models import Invoice, InvoiceNumber
from meterline.invoicing.schemas import InvoiceLine, InvoiceRead, LateUsage
from meterline.jobs import service as jobs
from meterline.kit.cache import TTLCache
from meterline.kit.decimals import display_decimal, parse_decimal
from meterline.kit.ids import new_id
from meterline.kit.pagination import Page
from meterline.meters import rollups
from meterline.meters import service as meters
from meterline.meters.aggregation import MeterSpec
from meterline.pricing import service as pricing
from meterline.pricing.rating import round_money
from meterline.pricing.schemas import InvoiceRef, PastUsage, UsageHistory
from meterline.pricing.statement import Statement
from meterline.subscriptions import service as subscriptions
from meterline.subscriptions.models import Subscription
from meterline.subscriptions.schemas import Period
from meterline.subscriptions.service import Bounds, Terms
from meterline.webhooks import service as webhooks
from meterline.workspaces import service as workspaces

FINALIZE = "invoice.finalize"
# Outbox jobs for work that follows an invoice's finalization or voiding elsewhere (the
# Stripe sync): written here with the change, handled by whatever ``jobs.registry``
# registers for them, so this package knows nothing of what follows.
FINALIZED = "invoice.finalized"
VOIDED = "invoice.voided"


class InvoiceNotDraft(Conflict):
    code = "invoice_not_draft"
    title = "Invoice is not a draft"


class InvoiceVoid(Conflict):
    code = "invoice_void"
    title = "Invoice is void"


# -- closing periods ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What pricing a subscription's periods needs."""

    subscription: Subscription
    zone: ZoneInfo
    terms: Terms
    specs: dict[str, MeterSpec]
    grace: timedelta


def context(
    session: Session, sub: Subscription, scratch: dict[Any, Any], zone: ZoneInfo | None = None
) -> Context:
    """``scratch`` keeps parsed plans, meters and workspace settings for one batch."""
    plans_cache = scratch.setdefault("plans", TTLCache(3600))
    terms = subscriptions.terms_of(session, sub, plans_cache)
    keys = frozenset(key for _, plan in terms.plans.values() for key in plan.features)
    specs = scratch.get(("specs", sub.workspace_id, keys))
    if specs is None:
        found = meters.by_keys(session, sub.workspace_id, set(keys))
        specs = {key: rollups.spec_of(meter) for key, meter in found.items()}
        scratch[("specs", sub.workspace_id, keys)] = specs
    grace = scratch.get(("grace", sub.workspace_id))
    if grace is None:
        days = workspaces.get(session, sub.workspace_id).invoice_grace_days
        grace = scratch[("grace", sub.workspace_id)] = timedelta(days=days)
    if zone is None:
        zone = customers.zone_of(session, sub.customer_id)
    return Context(sub, zone, terms, specs, grace)


@dataclass(frozen=True)
class _Batch:
    """What the billing cycles of one batch of jobs need, read in three queries."""

    subscriptions: dict[str, Subscription]
    closed: dict[str, datetime]  # subscription → end of its last invoiced period
    zones: dict[int, ZoneInfo]


def _batch(session: Session, scratch: dict[Any, Any]) -> _Batch:
    found: _Batch | None = scratch.get("cycles")
    if found is not None:
        return found
    ids = [
        job.payload["subscription"]
        for job in scratch.get("claimed", ())
        if job.kind == subscriptions.CYCLE
    ]
    subs = {s.id: s for s in session.scalars(select(Subscription).where(Subscription.id.in_(ids)))}
    closed = session.execute(
        select(Invoice.subscription_id, func.max(Invoice.period_end))
        .where(Invoice.subscription_id.in_(ids))
        .group_by(Invoice.subscription_id)
    )
    zones = customers.zones_of(session, {sub.customer_id for sub in subs.values()})
    found = scratch["cycles"] = _Batch(subs, dict(closed.all()), zones)
    return found


def cycle(
    session: Session, job: jobs.Claimed, now: datetime, scratch: dict[Any, Any]
) -> datetime | None:
    """The billing-cycle job: close every ended period, grant the current period's
    credit allocation, and be due again when the current period ends."""
    batch = _batch(session, scratch)
    sub = batch.subscriptions.get(job.payload["subscription"])
    if sub is None:
        return None
    ctx = context(session, sub, scratch, batch.zones[sub.customer_id])
    closed = batch.closed.get(sub.id)
    cursor = sub.start_at if closed is None else max(sub.start_at, closed)
    while True:
        if sub.end_at is not None and cursor >= sub.end_at:
            return None
        bounds = ctx.terms.bounds_at(cursor, ctx.zone)
        if bounds is None:
            return None
        if bounds.end > now:
            break
        close(session, ctx, bounds, now)
        cursor = bounds.end
    if now < sub.start_at:
        return sub.start_at
    if any(plan.credits and plan.credits.amount > 0 for _, plan in ctx.terms.plans.values()):
        credits.allocate(session, sub.workspace_id, sub.customer_id, now, scratch["plans"])
    return bounds.end


def close(session: Session, ctx: Context, bounds: Bounds, now: datetime) -> Invoice:
    """The invoice of one ended period: finalized now if its grace has passed, else a
    draft with its finalization scheduled."""
    sub = ctx.subscription
    found = _statement(session, ctx, bounds)
    invoice = Invoice(
        id=new_id("inv"),
        workspace_id=sub.workspace_id,
        customer_id=sub.customer_id,
        subscription_id=sub.id,
        number=None,
        status="draft",
        currency=found.currency,
        plan=found.plan,
        period_start=bounds.start,
        period_end=bounds.end,
        lines=lines_of(found),
        total=found.total,
        finalize_at=bounds.end + ctx.grace,
        created_at=now,
    )
    session.add(invoice)
    session.flush()
    _announce(session, invoice, "invoice.created", now)
    if invoice.finalize_at <= now:
        _finalize(session, invoice, now, None)
    else:
        jobs.schedule(
            session,
            FINALIZE,
            f"finalize:{invoice.id}",
            invoice.finalize_at,
            workspace_id=sub.workspace_id,
            payload={"invoice": invoice.id},
        )
    return invoice


def _statement(session: Session, ctx: Context, bounds: Bounds) -> Statement:
    sub = ctx.subscription
    return pricing.period_statement(
        session, sub.workspace_id, sub.customer_id, ctx.terms, bounds, ctx.specs, ctx.zone
    )


def lines_of(found: Statement) -> list[dict[str, Any]]:
    """The invoice's lines as stored: base fees, then each priced feature."""
    lines: list[dict[str, Any]] = [
        {
            "type": "base_fee",
            "description": fee.description,
            "plan": fee.plan,
            "quantity": "1",
            "start": fee.start.isoformat(),
            "end": fee.end.isoformat(),
            "days": fee.days,
            "period_days": fee.period_days,
            "amount": format(fee.amount, "f"),
        }
        for fee in found.fees
    ]
    lines.extend(
        {
            "type": "usage",
            "description": line.feature,
            "plan": found.plan,
            "feature": line.feature,
            "unit": line.unit,
            "quantity": display_decimal(line.billable),
            "used": display_decimal(line.used),
            "included": display_decimal(line.included),
            "amount": format(line.amount, "f"),
        }
        for line in found.usage
        if line.priced
    )
    return lines


def _period_of(session: Session, invoice: Invoice) -> tuple[Context, Bounds]:
    sub = session.get(Subscription, invoice.subscription_id)
    assert sub is not None  # a foreign key
    ctx = context(session, sub, {})
    bounds = ctx.terms.bounds_at(invoice.period_start, ctx.zone)
    assert bounds is not None  # the period was read from these terms
    return ctx, bounds


def _finalize(session: Session, invoice: Invoice, now: datetime, refresh: bool | None) -> None:
    """Number and freeze a draft; ``refresh`` first re-reads its usage (late events)."""
    if refresh:
        ctx, bounds = _period_of(session, invoice)
        found = _statement(session, ctx, bounds)
        invoice.lines = lines_of(found)
        invoice.total = found.total
        invoice.currency = found.currency
        invoice.plan = found.plan
    invoice.number = f"INV-{next_number(session, invoice.workspace_id):06d}"
    invoice.status = "finalized"
    invoice.finalized_at = now
    session.flush()
    _announce(session, invoice, "invoice.finalized", now)
    _follow_up(session, invoice, FINALIZED, now)


def _follow_up(session: Session, invoice: Invoice, kind: str, now: datetime) -> None:
    jobs.schedule(
        session,
        kind,
        f"{kind}:{invoice.id}",
        now,
        workspace_id=invoice.workspace_id,
        payload={"invoice": invoice.id},
    )


def _announce(session: Session, invoice: Invoice, kind: str, now: datetime) -> None:
    webhooks.emit(
        session,
        invoice.workspace_id,
        kind,
        invoice.customer_id,
        {
            "invoice": invoice.id,
            "number": invoice.number,
            "status": invoice.status,
            "currency": invoice.currency,
            "total": format(round_money(invoice.total, invoice.currency), "f"),
            "period": {
                "start": invoice.period_start.isoformat(),
                "end": invoice.period_end.isoformat(),
            },
        },
        now,
    )


def next_number(session: Session, workspace_id: int) -> int:
    """The workspace's next invoice number, taken in this transaction."""
    table = InvoiceNumber.__table__
    statement = dialect_insert(session, table).values(  # type: ignore[arg-type]
        workspace_id=workspace_id, last_number=1
    )
    number: int = session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.workspace_id],
            set_={"last_number": table.c.last_number + 1},
        ).returning(table.c.last_number)
    ).scalar_one()
    return number


def finalize_job(
    session: Session, job: jobs.Claimed, now: datetime, scratch: dict[Any, Any]
) -> datetime | None:
    """A draft's grace period is over: finalize it (unless finalized or voided since)."""
    invoice = session.get(Invoice, job.payload["invoice"], with_for_update=True)
    if invoice is not None and invoice.status == "draft":
        _finalize(session, invoice, now, refresh=True)
    return None


# -- the API's operations ------------------------------------------------------------------------


def get(session: Session, workspace_id: int, invoice_id: str) -> Invoice:
    return get_owned(session, Invoice, invoice_id, workspace_id, "invoice")


def finalize(session: Session, workspace_id: int, invoice_id: str, now: datetime) -> Invoice:
    invoice = get(session, workspace_id, invoice_id)
    session.refresh(invoice, with_for_update=True)
    if invoice.status != "draft":
        raise InvoiceNotDraft(f"Invoice {invoice_id!r} is {invoice.status}.")
    _finalize(session, invoice, now, refresh=True)
    return invoice


def void(session: Session, workspace_id: int, invoice_id: str, now: datetime) -> Invoice:
    invoice = get(session, workspace_id, invoice_id)
    session.refresh(invoice, with_for_update=True)
    if invoice.status == "void":
        raise InvoiceVoid(f"Invoice {invoice_id!r} is already void.")
    was_finalized = invoice.status == "finalized"
    invoice.status = "void"
    invoice.voided_at = now
    session.flush()
    if was_finalized:
        _follow_up(session, invoice, VOIDED, now)
    return invoice


def covering(
    session: Session, workspace_id: int, billing_customer_id: int, at: datetime
) -> Invoice | None:
    """The finalized invoice whose period holds ``at`` for the customer, else the draft
    one, locked so it cannot be finalized under a change to its usage (None: neither).
    A void invoice covers nothing."""
    found = session.scalars(
        select(Invoice)
        .where(
            Invoice.workspace_id == workspace_id,
            Invoice.customer_id == billing_customer_id,
            Invoice.period_start <= at,
            Invoice.period_end > at,
            Invoice.status.in_(("finalized", "draft")),
        )
        .with_for_update()
    ).all()
    return min(found, key=lambda invoice: invoice.status != "finalized", default=None)


def by_id(session: Session, invoice_id: str) -> Invoice | None:
    return session.get(Invoice, invoice_id)


def by_stripe_id(session: Session, workspace_id: int, stripe_invoice_id: str) -> Invoice | None:
    return session.scalar(
        select(Invoice).where(
            Invoice.workspace_id == workspace_id, Invoice.stripe_invoice_id == stripe_invoice_id
        )
    )


def set_stripe(
    session: Session,
    invoice: Invoice,
    *,
    stripe_invoice_id: str | None = None,
    stripe_status: str | None = None,
    payment_status: str | None = None,
) -> None:
    """Record what Stripe says of the invoice's twin (only the fields given)."""
    if stripe_invoice_id is not None:
        invoice.stripe_invoice_id = stripe_invoice_id
    if stripe_status is not None:
        invoice.stripe_status = stripe_status
    if payment_status is not None:
        invoice.payment_status = payment_status
    session.flush()


def _line(stored: dict[str, Any]) -> InvoiceLine:
    return InvoiceLine.model_validate(stored)


def to_read(session: Session, invoice: Invoice, *, late: bool = False) -> InvoiceRead:
    name = customers.external_ids(session, {invoice.customer_id})[invoice.customer_id]
    return _read(invoice, name, _late_usage(session, invoice) if late else None)


def _read(invoice: Invoice, customer: str, late: list[LateUsage] | None) -> InvoiceRead:
    return InvoiceRead(
        id=invoice.id,
        number=invoice.number,
        status=invoice.status,
        customer=customer,
        subscription=invoice.subscription_id,
        plan=invoice.plan,
        currency=invoice.currency,
        period=Period(start=invoice.period_start, end=invoice.period_end),
        lines=[_line(line) for line in invoice.lines],
        total=round_money(invoice.total, invoice.currency),  # stored without its places
        created_at=invoice.created_at,
        finalize_at=invoice.finalize_at if invoice.status == "draft" else None,
        finalized_at=invoice.finalized_at,
        voided_at=invoice.voided_at,
        stripe_invoice_id=invoice.stripe_invoice_id,
        stripe_status=invoice.stripe_status,
        payment_status=invoice.payment_status,
        late_usage=late,
    )


def _late_usage(session: Session, invoice: Invoice) -> list[LateUsage]:
    """What the meters count now for a finalized period, where it differs from what the
    invoice billed."""
    if invoice.status != "finalized":
        return []
    ctx, bounds = _period_of(session, invoice)
    now = {line.feature: line for line in _statement(session, ctx, bounds).usage if line.priced}
    found = []
    for stored in invoice.lines:
        current = now.get(stored.get("feature") or "")
        if stored["type"] != "usage" or current is None:
            continue
        invoiced = parse_decimal(stored["used"])
        if current.used != invoiced:
            found.append(
                LateUsage(
                    feature=current.feature,
                    invoiced=invoiced,
                    used=current.used,
                    amount_invoiced=parse_decimal(stored["amount"]),
                    amount_now=current.amount,
                )
            )
    return found


def list_page(
    session: Session,
    workspace_id: int,
    *,
    customer: str | None,
    status: str | None,
    period_from: datetime | None,
    period_to: datetime | None,
    limit: int,
    after: str | None,
) -> Page[InvoiceRead]:
    """Newest first."""
    query = select(Invoice).where(Invoice.workspace_id == workspace_id)
    if customer is not None:
        query = query.where(
            Invoice.customer_id == customers.id_for_filter(session, workspace_id, customer)
        )
    if status is not None:
        query = query.where(Invoice.status == status)
    if period_from is not None:
        query = query.where(Invoice.period_start >= period_from)
    if period_to is not None:
        query = query.where(Invoice.period_start < period_to)
    page = newest_page(session, query, Invoice.id, limit, after)
    names = customers.external_ids(session, {row.customer_id for row in page.items})
    return Page([_read(row, names[row.customer_id], None) for row in page.items], page.next_cursor)


def upcoming(session: Session, workspace_id: int, external_id: str, now: datetime) -> InvoiceRead:
    """The invoice the customer's current period would produce if it closed now."""
    standing, found = pricing.current_statement(session, workspace_id, external_id, now)
    return upcoming_of(standing, found)


def upcoming_of(standing: entitlements.Standing, found: Statement) -> InvoiceRead:
    """The upcoming invoice of a current period's statement."""
    return InvoiceRead(
        id=None,
        number=None,
        status="upcoming",
        customer=standing.billing_external_id,
        subscription=standing.terms.subscription_id,
        plan=found.plan,
        currency=found.currency,
        period=Period(start=found.start, end=found.end),
        lines=[_line(line) for line in lines_of(found)],
        total=found.total,
        created_at=None,
    )


def usage_history(
    session: Session, workspace_id: int, external_id: str, now: datetime, limit: int
) -> UsageHistory:
    """Past periods, newest first, priced as the current one is, each with its invoice
    once made (``GET …/usage/history``, library mode, the dashboard, the portal)."""
    found = pricing.history(session, workspace_id, external_id, now, limit)
    billing_id = pricing.billing_id(session, workspace_id, external_id)
    invoices = of_periods(session, billing_id, [s.start for s, _ in found])
    data = []
    for statement_, read in found:
        invoice = invoices.get(statement_.start)
        ref = (
            None
            if invoice is None
            else InvoiceRef(
                id=invoice.id,
                number=invoice.number,
                status=invoice.status,
                total=round_money(invoice.total, invoice.currency),
            )
        )
        data.append(PastUsage(**read.model_dump(), invoice=ref))
    return UsageHistory(data=data)


def of_periods(
    session: Session, billing_id: int, starts: list[datetime]
) -> dict[datetime, Invoice]:
    """The customer's invoices of periods starting at ``starts`` (the latest per start)."""
    if not starts:
        return {}
    rows = session.scalars(
        select(Invoice)
        .where(Invoice.customer_id == billing_id, Invoice.period_start.in_(starts))
        .order_by(Invoice.created_at)
    )
    return {row.period_start: row for row in rows}


def ending_at(
    session: Session, workspace_id: int, ends: dict[int, datetime]
) -> dict[int, InvoiceRead]:
    """For each customer id, its invoice (not void) of the period that ended at the
    given instant (its previous period, given its current period's start)."""
    if not ends:
        return {}
    rows = session.scalars(
        select(Invoice).where(
            Invoice.workspace_id == workspace_id,
            Invoice.period_end.in_(set(ends.values())),
            Invoice.status != "void",
        )
    )
    found = {row.customer_id: row for row in rows if ends.get(row.customer_id) == row.period_end}
    names = customers.external_ids(session, set(found))
    return {cid: _read(row, names[cid], None) for cid, row in found.items()}


def starting_since(session: Session, workspace_id: int, start: datetime) -> list[InvoiceRead]:
    """Every invoice (not void) of a period starting at or after ``start``, oldest first."""
    rows = list(
        session.scalars(
            select(Invoice)
            .where(
                Invoice.workspace_id == workspace_id,
                Invoice.period_start >= start,
                Invoice.status != "void",
            )
            .order_by(Invoice.period_start, Invoice.id)
        )
    )
    names = customers.external_ids(session, {row.customer_id for row in rows})
    return [_read(row, names[row.customer_id], None) for row in rows]
