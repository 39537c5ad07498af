"""Credits: grants, debits, voids, plan allocations and usage charges on the ledger.

Every billing customer (a customer without a parent) has at most one ledger; a
member of an organization spends its organization's credits and is named on each
debit as its subject. What changes a ledger first brings it up to date (``prepare``):
grants whose time has passed are expired as of their ``expires_at``, and the plan's
allocation for the current period is granted if it was not yet. Reads do the same
(in a write transaction of their own, only when something is due), and so does the
background sweep: expiry is exact whether or not anything runs at that moment.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.alerts import service as alerts
from meterline.credits import ledger
from meterline.credits.costs import Strategies, priced
from meterline.credits.ledger import Book, Notice, open_book
from meterline.credits.models import CreditDraw, CreditEntry, CreditGrant, CreditWallet
from meterline.credits.schemas import (
    CreditSettings,
    CreditsRead,
    DebitCreate,
    Draw,
    GrantCreate,
    GrantRead,
    GrantResult,
    TransactionRead,
)
from meterline.customers import service as customers
from meterline.customers.models import Customer
from meterline.db import Database
from meterline.errors import Conflict, NotFound, invalid
from meterline.kit.cache import TTLCache
from meterline.kit.decimals import CONTEXT, ZERO
from meterline.kit.pagination import Page, cursor_key, make_page
from meterline.meters.aggregation import MeterSpec, unit_divisor
from meterline.plans.models import Plan
from meterline.plans.schemas import PlanCredits
from meterline.subscriptions import service as subscriptions
from meterline.webhooks import service as webhooks

log = logging.getLogger("meterline")


class GrantClosed(Conflict):
    code = "grant_closed"
    title = "Grant closed"


@dataclass(frozen=True)
class Account:
    """Whose ledger usage is charged to, and on what terms."""

    workspace_id: int
    billing_id: int
    billing_external_id: str
    zone: ZoneInfo
    terms: subscriptions.Terms


def account(
    session: Session,
    workspace_id: int,
    billing_id: int,
    plans_cache: subscriptions.PlanCache | None = None,
) -> Account:
    billing = session.get(Customer, billing_id)
    assert billing is not None  # a foreign key
    return Account(
        workspace_id,
        billing_id,
        billing.external_id,
        ZoneInfo(billing.timezone),
        subscriptions.terms(session, workspace_id, billing_id, plans_cache),
    )


def _resolve(session: Session, workspace_id: int, external_id: str) -> tuple[Customer, Account]:
    customer = customers.get(session, workspace_id, external_id)
    return customer, account(session, workspace_id, customers.root_of(session, customer))


def _billed(session: Session, workspace_id: int, external_id: str) -> tuple[Customer, Customer]:
    """The customer and the one its credits are (itself, or its organization): what a
    read of the ledger needs, without the terms an account reads."""
    customer = customers.get(session, workspace_id, external_id)
    billing_id = customers.root_of(session, customer)
    billing = customer if billing_id == customer.id else session.get(Customer, billing_id)
    assert billing is not None  # a foreign key
    return customer, billing


# -- keeping a ledger up to date -------------------------------------------------------------


@dataclass(frozen=True)
class Allocation:
    key: str  # plan and period start: one grant per key
    credits: PlanCredits
    plan_name: str
    end: datetime


def allocation_due(acct: Account, now: datetime) -> Allocation | None:
    """The plan allocation of the period holding ``now`` (None: the plan grants none)."""
    plan = acct.terms.plan_at(now)
    if plan is None or plan[1].credits is None or plan[1].credits.amount <= 0:
        return None
    period = acct.terms.period_at(now, acct.zone)
    assert period is not None
    return Allocation(
        f"{plan[0]}@{period[0].isoformat()}", plan[1].credits, plan[1].name, period[1]
    )


def is_stale(peek: ledger.Peek | None, acct: Account, now: datetime) -> bool:
    """Whether the ledger has an expiry or an allocation due (a write is needed)."""
    due = allocation_due(acct, now)
    if peek is None:
        return due is not None
    if peek.next_expiry is not None and peek.next_expiry <= now:
        return True
    return due is not None and peek.allocated != due.key


def prepare(book: Book, acct: Account) -> Book:
    """Expire what is due and grant the period's allocation (once per transaction)."""
    if book.prepared:
        return book
    book.prepared = True
    book.expire()
    due = allocation_due(acct, book.now)
    if due is not None and book.wallet.allocated != due.key:
        granted = book.session.scalar(
            select(CreditGrant.id).where(
                CreditGrant.customer_id == acct.billing_id, CreditGrant.allocation == due.key
            )
        )
        if granted is None:
            book.grant(
                due.credits.amount,
                source="allocation",
                priority=due.credits.priority,
                expires_at=due.end if due.credits.expires_at_period_end else None,
                description=f"{due.plan_name} credits for the period from "
                f"{due.key.split('@', 1)[1]}",
                allocation=due.key,
            )
        book.wallet.allocated = due.key
        book.touched = True
    return book


def ensure(session: Session, acct: Account, now: datetime) -> Book:
    """The account's book, locked and up to date."""
    return prepare(open_book(session, acct.workspace_id, acct.billing_id, now), acct)


def balance(session: Session, acct: Account, now: datetime) -> Decimal:
    """The balance now, brought up to date in this (write) transaction if it must be."""
    peek = ledger.peek(session, acct.billing_id)
    if is_stale(peek, acct, now):
        book = ensure(session, acct, now)
        announce(session, book.flush())
        return book.balance
    return ZERO if peek is None else peek.balance


def balance_of(session: Session, billing_id: int) -> Decimal:
    """The cached balance as it stands (``refresh`` first to have expiries written)."""
    peek = ledger.peek(session, billing_id)
    return ZERO if peek is None else peek.balance


def allocate(
    session: Session,
    workspace_id: int,
    billing_id: int,
    now: datetime,
    plans_cache: subscriptions.PlanCache | None = None,
) -> None:
    """Grant the current period's plan allocation if it is due (the billing cycle does
    it at each period start; reads and debits would do it at their first touch)."""
    acct = account(session, workspace_id, billing_id, plans_cache)
    if allocation_due(acct, now) is not None:
        announce(session, ensure(session, acct, now).flush())


def refresh(db: Database, workspace_id: int, external_id: str, now: datetime) -> None:
    """Bring a customer's ledger up to date before a read, if something is due."""
    with db.read() as session:
        _, acct = _resolve(session, workspace_id, external_id)
        if not is_stale(ledger.peek(session, acct.billing_id), acct, now):
            return
    with db.write() as session:
        _, acct = _resolve(session, workspace_id, external_id)
        announce(session, ensure(session, acct, now).flush())


# -- the API's operations ----------------------------------------------------------------------


def _owner(session: Session, workspace_id: int, external_id: str, action: str) -> Account:
    """The account of a customer that owns its credits; 422 ``customer_is_member`` for a
    member of an organization (it spends the organization's)."""
    customer, acct = _resolve(session, workspace_id, external_id)
    if customer.id != acct.billing_id:
        raise invalid(
            "customer",
            "customer_is_member",
            f"{external_id!r} is a member of {acct.billing_external_id!r} and spends its "
            f"credits: {action} the organization.",
        )
    return acct


def grant(
    session: Session, workspace_id: int, external_id: str, data: GrantCreate, now: datetime
) -> GrantResult:
    acct = _owner(session, workspace_id, external_id, "grant them to")
    if data.expires_at is not None and data.expires_at <= now:
        raise invalid("expires_at", "expires_in_past", "expires_at must be in the future.")
    book = ensure(session, acct, now)
    made, entry = book.grant(
        data.amount,
        source=data.source,
        priority=data.priority,
        expires_at=data.expires_at,
        description=data.description,
        metadata=data.metadata,
    )
    announce(session, book.flush())
    return GrantResult(
        grant=grant_read(made),
        transaction=_written(entry, {}),
        balance=book.balance,
    )


def debit(
    session: Session, workspace_id: int, external_id: str, data: DebitCreate, now: datetime
) -> TransactionRead:
    """Deduct credits directly; 402 ``insufficient_credits`` (nothing debited) when the
    available balance is short. A member's debit is its organization's, naming it."""
    customer, acct = _resolve(session, workspace_id, external_id)
    book = ensure(session, acct, now)
    available = CONTEXT.subtract(book.balance, ledger.held(session, acct.billing_id, now))
    entry = book.debit(
        data.amount,
        available=available,
        subject_customer_id=customer.id,
        subject=customer.external_id,
        reference_type="external" if data.reference else None,
        reference=data.reference,
        description=data.description,
        metadata_=data.metadata or None,
    )
    announce(session, book.flush())
    return _written(entry, {customer.id: customer.external_id})


def void(
    session: Session, workspace_id: int, external_id: str, grant_id: str, now: datetime
) -> GrantRead:
    _, acct = _resolve(session, workspace_id, external_id)
    found = session.scalar(select(CreditGrant).where(CreditGrant.id == grant_id))
    if found is None or found.workspace_id != workspace_id or found.customer_id != acct.billing_id:
        raise NotFound(f"No grant {grant_id!r} for {external_id!r}.")
    book = ensure(session, acct, now)  # may expire it first
    live = next((g for g in book.grants if g.id == grant_id), None)
    if live is None:
        session.refresh(found)
        raise GrantClosed(f"Grant {grant_id!r} is {found.status}: nothing is left to void.")
    book.void(live)
    announce(session, book.flush())
    return grant_read(live)


def configure(
    session: Session, workspace_id: int, external_id: str, data: CreditSettings, now: datetime
) -> None:
    acct = _owner(session, workspace_id, external_id, "set the threshold on")
    book = ensure(session, acct, now)
    book.wallet.low_threshold = data.low_balance_threshold
    book.touched = True
    threshold = data.low_balance_threshold
    if threshold is None or book.balance >= threshold:
        book.wallet.low_alerted = False
    announce(session, book.flush())


def read(session: Session, workspace_id: int, external_id: str, now: datetime) -> CreditsRead:
    """Balance and live grants (in the order they are spent), as stored: callers bring
    the ledger up to date first (``refresh``)."""
    customer, billing = _billed(session, workspace_id, external_id)
    wallet = session.get(CreditWallet, billing.id)
    grants = sorted(
        session.scalars(
            select(CreditGrant).where(
                CreditGrant.customer_id == billing.id, CreditGrant.status == ledger.LIVE
            )
        ),
        key=ledger.consumption_order,
    )
    total = wallet.balance if wallet is not None else ZERO
    held = ledger.held(session, billing.id, now)
    return CreditsRead(
        customer=customer.external_id,
        billed_to=billing.external_id,
        balance=total,
        held=held,
        available=max(ZERO, CONTEXT.subtract(total, held)),
        low_balance_threshold=wallet.low_threshold if wallet is not None else None,
        grants=[grant_read(g) for g in grants],
    )


def transactions(
    session: Session, workspace_id: int, external_id: str, *, limit: int, after: str | None
) -> Page[TransactionRead]:
    """The ledger, newest first."""
    _, billing = _billed(session, workspace_id, external_id)
    query = (
        select(CreditEntry)
        .where(CreditEntry.customer_id == billing.id)
        .order_by(CreditEntry.seq.desc())
    )
    if (last := cursor_key(after, int)) is not None:
        query = query.where(CreditEntry.seq < last)
    page = make_page(list(session.scalars(query.limit(limit + 1))), limit, key=lambda e: e.seq)
    draws: dict[str, list[Draw]] = defaultdict(list)
    ids = [e.id for e in page.items]
    if ids:
        for entry_id, grant_id, amount in session.execute(
            select(CreditDraw.entry_id, CreditDraw.grant_id, CreditDraw.amount)
            .where(CreditDraw.entry_id.in_(ids))
            .order_by(CreditDraw.entry_id)
        ):
            draws[entry_id].append(Draw(grant=grant_id, amount=amount))
    names = customers.external_ids(
        session, {e.subject_customer_id for e in page.items if e.subject_customer_id}
    )
    return Page([_transaction(e, draws.get(e.id, []), names) for e in page.items], page.next_cursor)


def grant_read(grant: CreditGrant | ledger.Grant) -> GrantRead:
    return GrantRead(
        id=grant.id,
        amount=grant.amount,
        remaining=grant.remaining,
        source=grant.source,
        priority=grant.priority,
        expires_at=grant.expires_at,
        description=grant.description,
        metadata=grant.metadata_,
        status=grant.status,
        created_at=grant.created_at,
    )


def _transaction(
    entry: CreditEntry | ledger.Entry, drawn: list[Draw], names: dict[int, str]
) -> TransactionRead:
    """An entry as answered (stored, or just written); a usage debit's subject is the
    customer who used the credits, by external id."""
    subject = entry.subject
    if entry.subject_customer_id is not None:
        subject = names.get(entry.subject_customer_id, subject)
    return TransactionRead(
        id=entry.id,
        type=entry.kind,
        amount=entry.amount,
        balance_after=entry.balance_after,
        at=entry.at,
        grant=entry.grant_id,
        subject=subject,
        reference_type=entry.reference_type,
        reference=entry.reference,
        feature=entry.feature,
        quantity=entry.quantity,
        uncovered=entry.uncovered,
        description=entry.description,
        metadata=entry.metadata_,
        drawn=drawn,
    )


def _written(entry: ledger.Entry, names: dict[int, str]) -> TransactionRead:
    return _transaction(entry, [Draw(grant=g, amount=a) for g, a in entry.draws], names)


# -- usage ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Charge:
    """Usage that landed on a meter some plan prices in credits."""

    billing_id: int
    customer_id: int
    customer: str  # who used it (external id): the debit's subject
    spec: MeterSpec
    event_id: str
    timestamp: datetime
    raw: Decimal  # what it added to the meter
    quantity: Decimal
    properties: dict[str, Any]
    cost: Decimal | None = None  # decided already (a consume): debited as it is


def cost_of(
    acct: Account,
    spec: MeterSpec,
    customer: str,
    raw: Decimal,
    quantity: Decimal,
    properties: dict[str, Any],
    at: datetime,
    strategies: Strategies | None,
) -> Decimal:
    """The credits of usage at ``at`` under the plan in force then (0: not priced)."""
    plan = acct.terms.plan_at(at)
    if plan is None:
        return ZERO
    feature = plan[1].features.get(spec.key)
    if feature is None or not feature.enabled:
        return ZERO
    strategy = strategies.get(spec.key) if strategies else None
    return priced(feature.credit_cost, strategy, spec, customer, raw, quantity, properties, plan[0])


def charge(
    session: Session,
    workspace_id: int,
    charges: Sequence[Charge],
    accounts: dict[int, Account],
    now: datetime,
    *,
    strategies: Strategies | None = None,
    reference_type: str = "event",
) -> None:
    """Debit the credit cost of recorded usage, as it lands. The balance never goes
    below zero: what it cannot pay is kept as the debit's ``uncovered`` (and raises
    ``credits.depleted``). A charge whose cost a decision computed already (a consume,
    whose decision also checked the balance) is debited at that cost: priced once."""
    books: dict[int, Book] = {}
    plans: subscriptions.PlanCache = TTLCache(60)  # each plan parsed once per batch
    for item in charges:
        acct = accounts.get(item.billing_id)
        if acct is None:
            acct = accounts[item.billing_id] = account(
                session, workspace_id, item.billing_id, plans
            )
        cost = item.cost
        if cost is None:
            cost = cost_of(
                acct,
                item.spec,
                item.customer,
                item.raw,
                item.quantity,
                item.properties,
                item.timestamp,
                strategies,
            )
        if cost <= 0:
            continue
        book = books.get(item.billing_id)
        if book is None:
            book = books[item.billing_id] = ensure(session, acct, now)
        book.debit(
            cost,
            partial=True,
            subject_customer_id=item.customer_id,
            subject=item.customer,
            reference_type=reference_type,
            reference=item.event_id,
            feature=item.spec.key,
            quantity=CONTEXT.divide(item.raw, unit_divisor(item.spec)),
        )
    for book in books.values():
        announce(session, book.flush())


# -- the background sweep ---------------------------------------------------------------------


def sweep(db: Database, now: datetime, *, allocations: bool = True) -> tuple[int, int]:
    """Expire every grant whose time has come and grant every current allocation not yet
    granted, one customer per transaction. Safe to run in any number of processes.
    Returns (ledgers expired, allocations granted)."""
    with db.read() as session:
        due = list(
            session.execute(
                select(CreditWallet.workspace_id, CreditWallet.customer_id).where(
                    CreditWallet.next_expiry <= now
                )
            )
        )
    for workspace_id, customer_id in due:
        with db.write() as session:
            book = open_book(session, workspace_id, customer_id, now)
            book.expire()
            announce(session, book.flush())
    granted = 0
    if allocations:
        granted = _sweep_allocations(db, now)
    return len(due), granted


def _sweep_allocations(db: Database, now: datetime) -> int:
    """Customers of workspaces with a plan that grants credits, whose allocation for
    the current period is missing."""
    cache: subscriptions.PlanCache = TTLCache(3600)
    granted = 0
    with db.read() as session:
        allocating = {
            workspace_id
            for workspace_id, definition in session.execute(
                select(Plan.workspace_id, Plan.definition)
            )
            if (definition.get("credits") or {}).get("amount") not in (None, "0")
        }
        if not allocating:
            return 0
        roots = list(
            session.execute(
                select(Customer.workspace_id, Customer.id).where(
                    Customer.workspace_id.in_(allocating),
                    Customer.parent_id.is_(None),
                    Customer.deleted_at.is_(None),
                )
            )
        )
    for workspace_id, customer_id in roots:
        with db.read() as session:
            acct = account(session, workspace_id, customer_id, cache)
            if not is_stale(ledger.peek(session, customer_id), acct, now):
                continue
        with db.write() as session:
            acct = account(session, workspace_id, customer_id, cache)
            announce(session, ensure(session, acct, now).flush())
            granted += 1
    return granted


def announce(session: Session, notices: list[Notice]) -> None:
    """Raise the alerts and queue the webhook events the ledger's changes called for
    (``Book.flush`` returns them), in the caller's transaction."""
    for notice in notices:
        if notice.kind == "alert":
            alerts.raise_alert(
                session,
                notice.workspace_id,
                notice.customer_id,
                notice.type,
                now=notice.at,
                threshold=notice.threshold,
                data=notice.data,
            )
        else:
            webhooks.emit(
                session,
                notice.workspace_id,
                notice.type,
                notice.customer_id,
                notice.data,
                notice.at,
            )
