"""The ledger's arithmetic: one customer's book, locked, changed, written once.

``open_book`` locks the customer's wallet row (PostgreSQL: a row lock taken by an
upsert; SQLite has one writer) and loads its live grants; every change then happens in
memory — draws in consumption order, balances after each entry — and ``flush`` writes
the new entries and draws in one statement each, with the cached balance and
remainders. Nothing is ever updated in the ledger itself, only appended. This is the
hot path of every consume that costs credits, so it speaks driver-level SQL
(``kit.rawsql``), not the ORM.

The ledger sends nothing: what others must hear of — a grant (the ``credits.granted``
webhook), a balance crossing its low threshold or reaching zero (alerts) — comes back
from ``flush`` as ``Notice``s, which the caller announces (``credits.service.announce``)
once its changes are made.

Order of locks, everywhere: limit guards (``meters.counters.guard``), then
wallets in customer id order, then event rows. So ingestion, consumes, holds,
settlements and direct debits never wait on each other in a circle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.credits.models import CreditDraw, CreditEntry, CreditGrant, CreditWallet
from meterline.errors import InsufficientCredits
from meterline.kit import rawsql
from meterline.kit.decimals import CONTEXT, ZERO, display_decimal
from meterline.kit.ids import new_id

LIVE, USED, EXPIRED, VOIDED = "live", "used", "expired", "voided"
_FAR = datetime.max.replace(tzinfo=UTC)


@dataclass
class Wallet:
    """A ``credit_wallets`` row, as the book holds it."""

    workspace_id: int
    customer_id: int
    balance: Decimal
    next_expiry: datetime | None
    allocated: str | None
    low_threshold: Decimal | None
    low_alerted: bool
    depleted_alerted: bool


@dataclass
class Grant:
    """A live ``credit_grants`` row, as the book holds it (``changed``: to write back)."""

    seq: int
    id: str
    amount: Decimal
    remaining: Decimal
    source: str
    priority: int
    expires_at: datetime | None
    description: str | None
    metadata_: dict[str, Any]
    status: str
    created_at: datetime
    closed_at: datetime | None = None
    changed: bool = False


def consumption_order(grant: CreditGrant | Grant) -> tuple[Any, ...]:
    """Lowest priority number first, then earliest expiry (none: last), then oldest."""
    return (grant.priority, grant.expires_at is None, grant.expires_at or _FAR, grant.seq)


@dataclass
class Entry:
    """A ledger entry about to be written (and, after ``flush``, written)."""

    id: str
    kind: str
    amount: Decimal
    balance_after: Decimal
    at: datetime
    grant_id: str | None = None
    subject_customer_id: int | None = None
    subject: str | None = None
    reference_type: str | None = None
    reference: str | None = None
    feature: str | None = None
    quantity: Decimal | None = None
    uncovered: Decimal | None = None
    description: str | None = None
    metadata_: dict[str, Any] | None = None
    draws: list[tuple[str, Decimal]] = field(default_factory=list)  # (grant id, amount)


_ENTRY_COLUMNS = (
    ("id", "text"),
    ("workspace_id", "bigint"),
    ("customer_id", "bigint"),
    ("kind", "text"),
    ("amount", "numeric"),
    ("balance_after", "numeric"),
    ("grant_id", "text"),
    ("subject_customer_id", "bigint"),
    ("subject", "text"),
    ("reference_type", "text"),
    ("reference", "text"),
    ("feature", "text"),
    ("quantity", "numeric"),
    ("uncovered", "numeric"),
    ("description", "text"),
    ("metadata", "json"),
    ("at", "timestamptz"),
    ("created_at", "timestamptz"),
)
_DRAW_COLUMNS = (("entry_id", "text"), ("grant_id", "text"), ("amount", "numeric"))


@dataclass(frozen=True)
class Notice:
    """What the ledger saw that others must hear of: an alert to raise or a webhook
    event to send about the customer (``data`` as it goes out)."""

    kind: Literal["alert", "webhook"]
    workspace_id: int
    customer_id: int
    type: str
    data: dict[str, Any]
    at: datetime
    threshold: Decimal | None = None


class Book:
    """One billing customer's ledger, locked for the caller's write transaction."""

    def __init__(
        self, session: Session, wallet: Wallet, grants: list[Grant], now: datetime
    ) -> None:
        self.session = session
        self.wallet = wallet
        self.grants = sorted(grants, key=consumption_order)
        self.pending: list[Entry] = []
        self.closed: list[Grant] = []  # grants used up, expired or voided: to write back
        self.now = now
        self.prepared = False  # expiries and allocation brought up to date
        self.touched = False  # the wallet row has changes to write
        self.notices: list[Notice] = []  # for the caller to announce, from ``flush``

    @property
    def balance(self) -> Decimal:
        return self.wallet.balance

    # -- changes -----------------------------------------------------------------------

    def _append(self, entry: Entry) -> Entry:
        before = self.wallet.balance
        self.wallet.balance = entry.balance_after
        self.touched = True
        self.pending.append(entry)
        self._watch(before, entry)
        return entry

    def grant(
        self,
        amount: Decimal,
        *,
        source: str,
        priority: int = 0,
        expires_at: datetime | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        allocation: str | None = None,
    ) -> tuple[Grant, Entry]:
        self.expire()
        d = rawsql.driver(self.session)
        grant = Grant(
            0,
            new_id("grt"),
            amount,
            amount,
            source,
            priority,
            expires_at,
            description,
            metadata or {},
            LIVE if amount > 0 else USED,
            self.now,
        )
        [(grant.seq,)] = rawsql.run(  # its seq: the age order
            self.session,
            "INSERT INTO credit_grants (id, workspace_id, customer_id, amount, remaining, "
            "source, priority, expires_at, description, metadata, allocation, status, "
            f"created_at) VALUES ({', '.join([d.mark] * 13)}) RETURNING seq",
            (
                grant.id,
                self.wallet.workspace_id,
                self.wallet.customer_id,
                d.decimal(amount),
                d.decimal(amount),
                source,
                priority,
                None if expires_at is None else d.timestamp(expires_at),
                description,
                d.json(grant.metadata_),
                allocation,
                grant.status,
                d.timestamp(self.now),
            ),
        )
        if grant.status == LIVE:
            self.grants.append(grant)
            self.grants.sort(key=consumption_order)
        entry = self._append(
            Entry(
                new_id("txn"),
                "grant",
                amount,
                CONTEXT.add(self.wallet.balance, amount),
                self.now,
                grant_id=grant.id,
                description=description,
                metadata_=metadata or None,
            )
        )
        self._refresh_expiry()
        self._notify(
            "webhook",
            "credits.granted",
            {
                "grant": grant.id,
                "amount": display_decimal(amount),
                "source": source,
                "priority": priority,
                "expires_at": None if expires_at is None else expires_at.isoformat(),
                "balance": display_decimal(entry.balance_after),
            },
        )
        return grant, entry

    def debit(
        self,
        cost: Decimal,
        *,
        partial: bool = False,
        available: Decimal | None = None,
        **about: Any,
    ) -> Entry:
        """Draw ``cost`` from the live grants in consumption order. Whole or not at all
        (402 ``insufficient_credits`` when ``available`` — the balance less credits held
        by reservations — is short), unless ``partial``: then what the balance cannot
        pay is kept as the entry's ``uncovered`` and the balance stops at zero."""
        self.expire()
        can = self.wallet.balance if available is None else min(available, self.wallet.balance)
        if cost > can and not partial:
            raise InsufficientCredits(
                f"The balance ({display_decimal(can)} available) does not cover "
                f"{display_decimal(cost)} credits.",
                extra={
                    "balance": display_decimal(self.wallet.balance),
                    "available": display_decimal(max(can, ZERO)),
                    "required": display_decimal(cost),
                },
            )
        need = min(cost, self.wallet.balance)
        draws = self._draw(need)
        uncovered = CONTEXT.subtract(cost, need)
        return self._append(
            Entry(
                new_id("txn"),
                "debit",
                -need,
                CONTEXT.subtract(self.wallet.balance, need),
                self.now,
                uncovered=uncovered if uncovered > 0 else None,
                draws=draws,
                **about,
            )
        )

    def _draw(self, need: Decimal) -> list[tuple[str, Decimal]]:
        draws = []
        for grant in self.grants:
            if need <= 0:
                break
            take = min(grant.remaining, need)
            if take <= 0:
                continue
            grant.remaining = CONTEXT.subtract(grant.remaining, take)
            grant.changed = True
            need = CONTEXT.subtract(need, take)
            draws.append((grant.id, take))
            if grant.remaining == 0:
                grant.status = USED
                grant.closed_at = self.now
                self.closed.append(grant)
        self.grants = [g for g in self.grants if g.status == LIVE]
        self._refresh_expiry()
        return draws

    def reverse(
        self, entry_id: str, drawn: list[tuple[str, Decimal]], **about: Any
    ) -> Entry | None:
        """Give back what a debit drew (a voided event's charge): each grant it drew from
        gets its part back — a grant the debit used up is live again — except grants
        that have expired or been voided since, whose part stays gone (it would have
        expired with them). One ``reversal`` entry; None when nothing comes back."""
        self.expire()
        live = {g.id: g for g in self.grants}
        missing = [grant_id for grant_id, _ in drawn if grant_id not in live]
        if missing:
            for loaded in self._load(missing):
                expired = loaded.expires_at is not None and loaded.expires_at <= self.now
                if loaded.status == USED and not expired:
                    loaded.status = LIVE
                    loaded.closed_at = None
                    live[loaded.id] = loaded
                    self.grants.append(loaded)
        returned: list[tuple[str, Decimal]] = []
        for grant_id, amount in drawn:
            grant = live.get(grant_id)
            if grant is None or amount <= 0:
                continue
            grant.remaining = CONTEXT.add(grant.remaining, amount)
            grant.changed = True
            returned.append((grant_id, -amount))
        if not returned:
            return None
        self.grants.sort(key=consumption_order)
        self._refresh_expiry()
        total = sum((-amount for _, amount in returned), ZERO)
        return self._append(
            Entry(
                new_id("txn"),
                "reversal",
                total,
                CONTEXT.add(self.wallet.balance, total),
                self.now,
                draws=returned,
                description=f"reverses {entry_id}",
                **about,
            )
        )

    def _load(self, grant_ids: list[str]) -> list[Grant]:
        d = rawsql.driver(self.session)
        marks = ", ".join([d.mark] * len(grant_ids))
        return [
            _grant_of(d, row)
            for row in rawsql.run(
                self.session,
                f"SELECT {_GRANT_COLUMNS} FROM credit_grants WHERE customer_id = {d.mark} "
                f"AND id IN ({marks})",
                (self.wallet.customer_id, *grant_ids),
            )
        ]

    def _close(self, grant: Grant, kind: str, status: str, at: datetime) -> Entry:
        left = grant.remaining
        grant.remaining = ZERO
        grant.status = status
        grant.closed_at = at
        grant.changed = True
        self.closed.append(grant)
        self.grants = [g for g in self.grants if g is not grant]
        self._refresh_expiry()
        return self._append(
            Entry(
                new_id("txn"),
                kind,
                -left,
                CONTEXT.subtract(self.wallet.balance, left),
                at,
                grant_id=grant.id,
                draws=[(grant.id, left)] if left else [],
            )
        )

    def expire(self) -> list[Entry]:
        """Expire every live grant whose time has come, in the order they expired, each
        entry dated at its grant's ``expires_at`` (not when it was noticed)."""
        due = sorted(
            (g for g in self.grants if g.expires_at is not None and g.expires_at <= self.now),
            key=lambda g: (g.expires_at, g.seq),
        )
        return [self._close(g, "expiry", EXPIRED, g.expires_at or self.now) for g in due]

    def void(self, grant: Grant) -> Entry:
        """Remove what is left of a live grant (what was drawn stays drawn)."""
        self.expire()
        return self._close(grant, "void", VOIDED, self.now)

    def _refresh_expiry(self) -> None:
        dates = [g.expires_at for g in self.grants if g.expires_at is not None]
        found = min(dates) if dates else None
        if found != self.wallet.next_expiry:
            self.wallet.next_expiry = found
            self.touched = True

    def _watch(self, before: Decimal, entry: Entry) -> None:
        """Low-balance and depletion alerts: once per crossing, re-armed when the
        balance comes back."""
        wallet = self.wallet
        after = wallet.balance
        threshold = wallet.low_threshold
        if after > before:
            if threshold is None or after >= threshold:
                wallet.low_alerted = False
            if after > 0:
                wallet.depleted_alerted = False
            return
        data = {
            "balance": display_decimal(after),
            "entry": entry.id,
            **({"uncovered": display_decimal(entry.uncovered)} if entry.uncovered else {}),
        }
        if threshold is not None and after < threshold and not wallet.low_alerted:
            wallet.low_alerted = True
            self._notify("alert", "credits.low", data, threshold)
        if after <= 0 and (before > 0 or entry.uncovered) and not wallet.depleted_alerted:
            wallet.depleted_alerted = True
            self._notify("alert", "credits.depleted", data)

    def _notify(
        self,
        kind: Literal["alert", "webhook"],
        type_: str,
        data: dict[str, Any],
        threshold: Decimal | None = None,
    ) -> None:
        wallet = self.wallet
        self.notices.append(
            Notice(kind, wallet.workspace_id, wallet.customer_id, type_, data, self.now, threshold)
        )

    # -- writing ---------------------------------------------------------------------------

    def flush(self) -> list[Notice]:
        """Write the pending entries and draws, the wallet and the grants changed;
        returns the notices of those changes, for the caller to announce."""
        self._write()
        notices, self.notices = self.notices, []
        return notices

    def _write(self) -> None:
        d = rawsql.driver(self.session)
        changed = [g for g in (*self.grants, *self.closed) if g.changed]
        if changed:
            rawsql.run_many(
                self.session,
                f"UPDATE credit_grants SET remaining = {d.mark}, status = {d.mark}, "
                f"closed_at = {d.mark} WHERE seq = {d.mark}",
                [
                    (
                        d.decimal(g.remaining),
                        g.status,
                        None if g.closed_at is None else d.timestamp(g.closed_at),
                        g.seq,
                    )
                    for g in changed
                ],
            )
            for g in changed:
                g.changed = False
            self.closed = []
        if self.touched:
            w = self.wallet
            rawsql.run(
                self.session,
                f"UPDATE credit_wallets SET balance = {d.mark}, next_expiry = {d.mark}, "
                f"allocated = {d.mark}, low_threshold = {d.mark}, low_alerted = {d.mark}, "
                f"depleted_alerted = {d.mark}, updated_at = {d.mark} WHERE customer_id = {d.mark}",
                (
                    d.decimal(w.balance),
                    None if w.next_expiry is None else d.timestamp(w.next_expiry),
                    w.allocated,
                    d.decimal(w.low_threshold),
                    w.low_alerted,
                    w.depleted_alerted,
                    d.timestamp(self.now),
                    w.customer_id,
                ),
            )
            self.touched = False
        if not self.pending:
            return
        created = d.timestamp(self.now)
        ws, customer = self.wallet.workspace_id, self.wallet.customer_id
        d.insert_many(
            self.session,
            "credit_entries",
            _ENTRY_COLUMNS,
            [
                (
                    e.id,
                    ws,
                    customer,
                    e.kind,
                    d.decimal(e.amount),
                    d.decimal(e.balance_after),
                    e.grant_id,
                    e.subject_customer_id,
                    e.subject,
                    e.reference_type,
                    e.reference,
                    e.feature,
                    d.decimal(e.quantity),
                    d.decimal(e.uncovered),
                    e.description,
                    None if e.metadata_ is None else d.json(e.metadata_),
                    d.timestamp(e.at),
                    created,
                )
                for e in self.pending
            ],
        )
        d.insert_many(
            self.session,
            "credit_draws",
            _DRAW_COLUMNS,
            [(e.id, grant, d.decimal(amount)) for e in self.pending for grant, amount in e.draws],
        )
        self.pending = []


# -- opening books -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Peek:
    """A wallet read without a lock: enough to answer, or to know a write is due."""

    balance: Decimal
    next_expiry: datetime | None
    allocated: str | None


def peek(session: Session, customer_id: int) -> Peek | None:
    d = rawsql.driver(session)
    rows = rawsql.run(
        session,
        f"SELECT balance, next_expiry, allocated FROM credit_wallets WHERE customer_id = {d.mark}",
        (customer_id,),
    )
    if not rows:
        return None
    balance, next_expiry, allocated = rows[0]
    return Peek(
        Decimal(balance),
        None if next_expiry is None else d.parse_timestamp(next_expiry),
        allocated,
    )


def open_book(session: Session, workspace_id: int, customer_id: int, now: datetime) -> Book:
    """The customer's book, its wallet locked until the transaction ends (made on first
    use). Opened once per transaction: later calls get the same book."""
    books: dict[int, Book] = rawsql.transaction_state(session).setdefault("credit_books", {})
    found = books.get(customer_id)
    if found is not None:
        found.now = max(found.now, now)
        return found
    d = rawsql.driver(session)
    # One round trip: made if missing, locked (the upsert takes the row lock), read.
    [row] = rawsql.run(
        session,
        "INSERT INTO credit_wallets (customer_id, workspace_id, balance, low_alerted, "
        f"depleted_alerted, updated_at) VALUES ({d.mark}, {d.mark}, {d.mark}, "
        f"{d.mark}, {d.mark}, {d.mark}) ON CONFLICT (customer_id) DO UPDATE SET "
        "customer_id = excluded.customer_id RETURNING balance, next_expiry, allocated, "
        "low_threshold, low_alerted, depleted_alerted",
        (customer_id, workspace_id, d.decimal(ZERO), False, False, d.timestamp(now)),
    )
    balance, next_expiry, allocated, low, low_alerted, depleted_alerted = row
    wallet = Wallet(
        workspace_id,
        customer_id,
        Decimal(balance),
        None if next_expiry is None else d.parse_timestamp(next_expiry),
        allocated,
        None if low is None else Decimal(low),
        bool(low_alerted),
        bool(depleted_alerted),
    )
    grants = [
        _grant_of(d, row)
        for row in rawsql.run(
            session,
            f"SELECT {_GRANT_COLUMNS} FROM credit_grants WHERE customer_id = {d.mark} "
            "AND status = 'live'",
            (customer_id,),
        )
    ]
    book = books[customer_id] = Book(session, wallet, grants, now)
    return book


_GRANT_COLUMNS = (
    "seq, id, amount, remaining, source, priority, expires_at, description, metadata, "
    "status, created_at"
)


def _grant_of(d: rawsql.Driver, row: tuple[Any, ...]) -> Grant:
    (
        seq,
        grant_id,
        amount,
        remaining,
        source,
        priority,
        expires_at,
        description,
        metadata,
        status,
        created_at,
    ) = row
    return Grant(
        seq,
        grant_id,
        Decimal(amount),
        Decimal(remaining),
        source,
        priority,
        None if expires_at is None else d.parse_timestamp(expires_at),
        description,
        d.parse_json(metadata) if metadata is not None else {},
        status,
        d.parse_timestamp(created_at),
    )


def debits_of(
    session: Session, customer_id: int, reference: str
) -> list[tuple[str, list[tuple[str, Decimal]]]]:
    """The debit entries of a usage reference (an event id), each with what it drew from
    which grant."""
    d = rawsql.driver(session)
    rows = rawsql.run(
        session,
        "SELECT e.id, w.grant_id, w.amount FROM credit_entries e "
        "LEFT JOIN credit_draws w ON w.entry_id = e.id "
        f"WHERE e.customer_id = {d.mark} AND e.reference = {d.mark} AND e.kind = 'debit' "
        "ORDER BY e.seq",
        (customer_id, reference),
    )
    found: dict[str, list[tuple[str, Decimal]]] = {}
    for entry_id, grant_id, amount in rows:
        drawn = found.setdefault(entry_id, [])
        if grant_id is not None:
            drawn.append((grant_id, Decimal(amount)))
    return list(found.items())


def open_books(
    session: Session, workspace_id: int, customer_ids: Iterable[int], now: datetime
) -> dict[int, Book]:
    """Several books, locked in customer id order."""
    return {c: open_book(session, workspace_id, c, now) for c in sorted(set(customer_ids))}


def held(session: Session, customer_id: int, now: datetime) -> Decimal:
    """Credits held by the customer's live reservations."""
    d = rawsql.driver(session)
    rows = rawsql.run(
        session,
        f"SELECT credits FROM reservations WHERE customer_id = {d.mark} AND status = 'held' "
        f"AND expires_at > {d.mark} AND credits IS NOT NULL",
        (customer_id, d.timestamp(now)),
    )
    return sum((Decimal(value) for (value,) in rows), ZERO)


# -- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    customer_id: int
    what: str  # "balance" or "grant <id>"
    cached: Decimal
    ledger: Decimal


def verify(session: Session, *, repair: bool = False) -> list[Mismatch]:
    """Every cached balance against the sum of its ledger, and every grant's remaining
    against its amount less its draws (and the balance against its live grants).
    With ``repair`` the caches are rebuilt from the ledger."""
    found: list[Mismatch] = []
    sums: dict[int, Decimal] = {}
    for customer_id, amount in session.execute(select(CreditEntry.customer_id, CreditEntry.amount)):
        sums[customer_id] = CONTEXT.add(sums.get(customer_id, ZERO), amount)
    wallets = {w.customer_id: w for w in session.scalars(select(CreditWallet))}
    for customer_id in sorted(set(sums) | set(wallets)):
        ledger = sums.get(customer_id, ZERO)
        wallet = wallets.get(customer_id)
        cached = wallet.balance if wallet is not None else ZERO
        if cached != ledger:
            found.append(Mismatch(customer_id, "balance", cached, ledger))
            if repair and wallet is not None:
                wallet.balance = ledger
    drawn: dict[str, Decimal] = {}
    for grant_id, amount in session.execute(select(CreditDraw.grant_id, CreditDraw.amount)):
        drawn[grant_id] = CONTEXT.add(drawn.get(grant_id, ZERO), amount)
    live: dict[int, Decimal] = {}
    for grant in session.scalars(select(CreditGrant).order_by(CreditGrant.seq)):
        left = CONTEXT.subtract(grant.amount, drawn.get(grant.id, ZERO))
        if grant.remaining != left:
            found.append(Mismatch(grant.customer_id, f"grant {grant.id}", grant.remaining, left))
            if repair:
                grant.remaining = left
        if grant.status == LIVE:
            live[grant.customer_id] = CONTEXT.add(live.get(grant.customer_id, ZERO), left)
    for customer_id in sorted(set(live) | set(sums)):
        total = live.get(customer_id, ZERO)
        if total != sums.get(customer_id, ZERO):
            found.append(Mismatch(customer_id, "live grants", total, sums.get(customer_id, ZERO)))
    session.flush()
    return found
