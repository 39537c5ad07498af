"""Revenue across customers: a snapshot of every billed customer's upcoming invoice.

What the overview, the customers list and the revenue page show across customers —
this period's revenue so far and projected, last period's, top customers, limit status
— needs every billed customer's current statement: one rollup read per customer, ~10
ms each with 10,000 events a month, so ten seconds for a thousand customers. That is
computed in the background and shown with its as-of time, and it is exactly what the
API answered at that instant: one read transaction (a consistent snapshot: SQLite's
read transaction, PostgreSQL's REPEATABLE READ) and one ``now`` for every customer,
through the same functions the API calls (``pricing.service.current_and_forecast``,
``invoicing.service.upcoming_of``, ``entitlements.service.entitlements``).

A page that finds the snapshot older than ``METERLINE_DASHBOARD_SNAPSHOT_SECONDS``
starts a refresh and shows the one it has; with none yet (or after a change made in the
dashboard) it waits up to two seconds for the fresh one. Per process, in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from meterline.customers import service as customers
from meterline.db import Database
from meterline.entitlements import service as entitlements
from meterline.entitlements.schemas import EntitlementsRead
from meterline.invoicing import service as invoicing
from meterline.invoicing.schemas import InvoiceLine
from meterline.kit.decimals import CONTEXT, ZERO
from meterline.kit.time import utc_now
from meterline.pricing import service as pricing

log = logging.getLogger("meterline")
NEAR = Decimal("0.8")  # a limit at 80 % or more of its max is "near"
WAIT_SECONDS = 2.0
Status = Literal["ok", "near", "exceeded"]


@dataclass(frozen=True)
class Figures:
    """One billed customer at the snapshot's instant."""

    customer_id: int
    external_id: str
    name: str | None
    plan: str | None  # None: no subscription and no default plan
    currency: str | None
    total: Decimal  # the upcoming invoice's total (revenue so far)
    projected: Decimal  # the forecast's total at period end
    last_period: Decimal | None  # the previous period's invoice, if any
    usage: dict[str, Decimal]  # feature -> used this period
    units: dict[str, str | None]
    status: Status
    lines: list[InvoiceLine]  # the upcoming invoice's lines


@dataclass(frozen=True)
class Snapshot:
    workspace_id: int
    as_of: datetime
    seconds: float  # how long it took to compute
    customers: dict[int, Figures]

    def by_currency(self, pick: Callable[[Figures], Decimal | None]) -> dict[str, Decimal]:
        sums: dict[str, Decimal] = {}
        for figures in self.customers.values():
            value = pick(figures)
            if figures.currency is not None and value is not None:
                sums[figures.currency] = CONTEXT.add(sums.get(figures.currency, ZERO), value)
        return dict(sorted(sums.items()))

    @property
    def active(self) -> int:
        """Billed customers with usage this period."""
        return sum(1 for f in self.customers.values() if any(v > 0 for v in f.usage.values()))

    def top_by_revenue(self, n: int = 10) -> list[Figures]:
        billed = [f for f in self.customers.values() if f.plan is not None]
        return sorted(billed, key=lambda f: (-f.total, -f.projected, f.external_id))[:n]

    def top_by_usage(self, feature: str, n: int = 10) -> list[Figures]:
        users = [f for f in self.customers.values() if f.usage.get(feature, ZERO) > 0]
        return sorted(users, key=lambda f: (-f.usage[feature], f.external_id))[:n]

    @property
    def features(self) -> list[str]:
        return sorted({key for f in self.customers.values() for key in f.usage})


def limit_status(found: EntitlementsRead) -> Status:
    """exceeded: some limit has nothing left; near: some limit is 80 % used or more."""
    status: Status = "ok"
    for feature in found.features:
        for limit in feature.limits:
            if limit.max is None:
                continue
            if limit.exceeded:
                return "exceeded"
            spent = CONTEXT.add(limit.used, limit.held)
            if limit.max > 0 and spent >= CONTEXT.multiply(limit.max, NEAR):
                status = "near"
    return status


def compute(session: Session, workspace_id: int, now: datetime) -> dict[int, Figures]:
    """Every billed customer's figures at ``now`` (call inside one read transaction)."""
    roots = customers.billing_roots(session, workspace_id)
    found: dict[int, Figures] = {}
    currents: dict[int, tuple[str, datetime]] = {}
    for customer_id, external_id, name in roots:
        try:
            standing, statement, forecast = pricing.current_and_forecast(
                session, workspace_id, external_id, now, limits=False
            )
        except pricing.NoPlan:
            found[customer_id] = Figures(
                customer_id, external_id, name, None, None, ZERO, ZERO, None, {}, {}, "ok", []
            )
            continue
        upcoming = invoicing.upcoming_of(standing, statement)
        rights = entitlements.entitlements(session, workspace_id, standing, external_id, now)
        currents[customer_id] = (statement.currency, statement.start)
        found[customer_id] = Figures(
            customer_id=customer_id,
            external_id=external_id,
            name=name,
            plan=statement.plan,
            currency=statement.currency,
            total=upcoming.total,
            projected=forecast.total,
            last_period=None,
            usage={line.feature: line.used for line in statement.usage},
            units={line.feature: line.unit for line in statement.usage},
            status=limit_status(rights),
            lines=upcoming.lines,
        )
    previous = invoicing.ending_at(
        session, workspace_id, {cid: start for cid, (_, start) in currents.items()}
    )
    for customer_id, invoice in previous.items():
        figures = found[customer_id]
        if invoice.currency == figures.currency:
            found[customer_id] = replace(figures, last_period=invoice.total)
    return found


def take(db: Database, workspace_id: int) -> Snapshot:
    """A snapshot now, in one consistent read."""
    started = time.perf_counter()
    with db.read() as session:
        if not db.is_sqlite:
            session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        now = utc_now()
        figures = compute(session, workspace_id, now)
    return Snapshot(workspace_id, now, time.perf_counter() - started, figures)


@dataclass
class _Slot:
    snapshot: Snapshot | None = None
    stale: bool = False  # a change was made here since it was taken
    running: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class Snapshots:
    """Each workspace's latest snapshot in this process, refreshed in the background."""

    def __init__(self, db: Database, max_age_seconds: float) -> None:
        self.db = db
        self.max_age = max_age_seconds
        self._slots: dict[int, _Slot] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def get(self, workspace_id: int) -> Snapshot | None:
        """The snapshot to show now (None: still being computed the first time)."""
        if self.max_age <= 0:
            return take(self.db, workspace_id)
        with self._lock:
            slot = self._slots.setdefault(workspace_id, _Slot())
            current = slot.snapshot
            age = None if current is None else (utc_now() - current.as_of).total_seconds()
            due = current is None or slot.stale or (age is not None and age >= self.max_age)
            if due and not slot.running:
                slot.running = True
                slot.done.clear()
                thread = threading.Thread(
                    target=self._refresh, args=(workspace_id,), name="dashboard snapshot"
                )
                thread.daemon = True
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
                thread.start()
            must_wait = current is None or slot.stale
        if must_wait:
            slot.done.wait(WAIT_SECONDS)
            with self._lock:
                return slot.snapshot
        return current

    def invalidate(self, workspace_id: int) -> None:
        """A change was made: the next page waits for a fresh snapshot."""
        with self._lock:
            slot = self._slots.get(workspace_id)
            if slot is not None:
                slot.stale = True

    def _refresh(self, workspace_id: int) -> None:
        slot = self._slots[workspace_id]
        try:
            with self._lock:
                slot.stale = False
            fresh = take(self.db, workspace_id)
            with self._lock:
                slot.snapshot = fresh
        except Exception:  # logged; the next page view tries again
            log.exception("dashboard snapshot of workspace %s failed", workspace_id)
        finally:
            with self._lock:
                slot.running = False
            slot.done.set()

    def close(self, timeout: float = 10.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
