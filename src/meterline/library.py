"""Library mode (SPEC §7): the same engine in-process, no HTTP, same semantics.

    ml = meterline.Meterline("sqlite:///usage.db")
    ml.create_meter(key="ai_insight", event_type="ai_insight", aggregation="count")
    ml.create_plan(key="pro", name="Pro", currency="USD", credits={"amount": "7000"},
                   features={"ai_insight": {"credit_cost": {"per_unit": "9"}}})

    @ml.credit_cost("ai_insight")  # a Python strategy instead of the plan's table
    def insight_cost(usage: Usage) -> Decimal: ...

The HTTP API's calls, named as the SDK names them: admin (meters, plans, customers,
subscriptions, grants and debits, invoices, limit resets, event voids), reads (usage,
its history and forecast, entitlements, credits and their transactions, invoices),
``record``, ``check``/``consume``, reservations, ``run_jobs`` (library mode runs no
background thread) and Python credit-cost strategies. Calls take the fields of the HTTP
bodies and answer the HTTP response models; failures raise
``meterline.errors.MeterlineError`` (with its ``code``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from meterline import migrations
from meterline.auth import onboarding
from meterline.config import Settings
from meterline.configfile import document as config_document
from meterline.configfile import service as configfile
from meterline.configfile.schemas import ApplyResult, ConfigDocument
from meterline.credits import service as credits
from meterline.credits.costs import Strategy, Usage
from meterline.credits.schemas import (
    CreditsRead,
    DebitCreate,
    GrantCreate,
    GrantResult,
    TransactionList,
    TransactionRead,
)
from meterline.customers import service as customers
from meterline.customers.schemas import CustomerCreate, CustomerRead
from meterline.db import Database
from meterline.entitlements import reservations
from meterline.entitlements import service as entitlements
from meterline.entitlements.schemas import (
    CheckRequest,
    CheckResponse,
    EntitlementsRead,
    LimitReset,
    ReservationCreate,
    ReservationRead,
    ReservationSettle,
)
from meterline.errors import FieldError, ValidationFailed
from meterline.ingestion.schemas import EventRead, IngestError
from meterline.invoicing import service as invoicing
from meterline.invoicing import voids
from meterline.invoicing.schemas import InvoiceList, InvoiceRead
from meterline.kit.cache import TTLCache
from meterline.kit.time import utc_now
from meterline.meters import service as meters
from meterline.meters.schemas import MeterCreate, MeterRead
from meterline.plans import service as plans
from meterline.plans.schemas import PlanCreate, PlanRead
from meterline.pricing import service as pricing
from meterline.pricing.schemas import ForecastRead, UsageHistory, UsageRead
from meterline.recording import pipeline
from meterline.subscriptions import service as subscriptions
from meterline.subscriptions.schemas import SubscriptionCreate, SubscriptionRead
from meterline.workspaces import service as workspaces

__all__ = ["Meterline", "Recorded", "Usage"]


@dataclass(frozen=True)
class Recorded:
    """What ``record`` did: truthy when the event was stored now (falsy: a repeat of a
    stored one), with ``warnings`` for each meter of its type that does not count it."""

    stored: bool
    warnings: list[IngestError] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.stored


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return config_document.load(path.read_text(encoding="utf-8")).data
    except config_document.FileError as exc:
        where = f"{path}:{exc.line}" if exc.line else str(path)
        raise ValidationFailed(
            f"{where}: {exc.message}", errors=[FieldError("", "invalid_file", exc.message)]
        ) from exc


class Meterline:
    """Meterline in this process, on its own database (migrated on open). Uses the
    database's only workspace (made on an empty database), or the one named."""

    def __init__(self, database_url: str, *, workspace: str | None = None) -> None:
        self._db = Database(database_url, Settings(database_url=database_url))
        migrations.upgrade(self._db)
        with self._db.write() as session:
            made = onboarding.bootstrap(session) if workspace is None else None
            found = made.workspace if made else workspaces.find_workspace(session, workspace)
            self.workspace_id = found.id
        self._strategies: dict[str, Strategy] = {}
        self._standings: TTLCache[Any, Any] = TTLCache(entitlements.STANDING_SECONDS)

    def close(self) -> None:
        self._db.dispose()

    def __enter__(self) -> Meterline:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- credit-cost strategies ----------------------------------------------------------

    def register_credit_cost(self, feature: str, strategy: Strategy) -> None:
        """Price ``feature``'s usage in credits with ``strategy(usage) -> credits`` for
        every plan that has the feature (instead of the plans' ``credit_cost``). It is
        called as usage is checked and recorded; what it raises fails that call."""
        self._strategies[feature] = strategy

    def credit_cost(self, feature: str) -> Callable[[Strategy], Strategy]:
        """``register_credit_cost`` as a decorator."""

        def register(strategy: Strategy) -> Strategy:
            self.register_credit_cost(feature, strategy)
            return strategy

        return register

    # -- admin ------------------------------------------------------------------------------

    def create_meter(self, **fields: Any) -> MeterRead:
        with self._db.write() as session:
            return meters.to_read(meters.create(session, self.workspace_id, MeterCreate(**fields)))

    def create_plan(self, **fields: Any) -> PlanRead:
        with self._db.write() as session:
            return plans.to_read(plans.create(session, self.workspace_id, PlanCreate(**fields)))

    def apply(
        self,
        document: str | Path | dict[str, Any],
        *,
        prune: bool = False,
        dry_run: bool = False,
    ) -> ApplyResult:
        """Make the workspace's meters, plans and settings match ``document`` — a path to
        a YAML file, or the document itself — as ``meterline apply`` does: in one
        transaction, plans that differ replaced (their version goes up), with ``prune``
        meters it does not name deleted, with ``dry_run`` nothing changed. An invalid file
        raises ``ValidationFailed`` naming its line."""
        data = document if isinstance(document, dict) else _read_config(Path(document))
        return configfile.run(self._db, self.workspace_id, data, prune=prune, dry_run=dry_run)

    def export(self) -> ConfigDocument:
        """The workspace's meters, plans and settings, as ``apply`` takes them back."""
        with self._db.read() as session:
            return configfile.export(session, self.workspace_id)

    def create_customer(self, **fields: Any) -> CustomerRead:
        with self._db.write() as session:
            return customers.create(session, self.workspace_id, CustomerCreate(**fields))

    def subscribe(self, *, customer: str, plan: str, **fields: Any) -> SubscriptionRead:
        data = SubscriptionCreate(customer=customer, plan=plan, **fields)
        with self._db.write() as session:
            sub = subscriptions.create(session, self.workspace_id, data)
            return subscriptions.to_read(session, sub)

    def grant_credits(self, *, customer: str, amount: Any, **fields: Any) -> GrantResult:
        data = GrantCreate(amount=amount, **fields)
        with self._db.write() as session:
            return credits.grant(session, self.workspace_id, customer, data, utc_now())

    def credits(self, customer: str) -> CreditsRead:
        now = utc_now()
        credits.refresh(self._db, self.workspace_id, customer, now)
        with self._db.read() as session:
            return credits.read(session, self.workspace_id, customer, now)

    # -- usage ------------------------------------------------------------------------------

    def usage(self, customer: str) -> UsageRead:
        """The current billing period in money, as ``GET /v1/customers/{id}/usage``."""
        now = utc_now()
        credits.refresh(self._db, self.workspace_id, customer, now)
        with self._db.read() as session:
            return pricing.current(session, self.workspace_id, customer, now)

    def run_jobs(self) -> int:
        """Run every background job due now: period closes into invoices, invoice
        finalization, credit allocation and expiry, reservation expiry, retention.
        Library mode has no background thread: call this from your scheduler (or run
        `meterline worker` against the same database). Returns how many ran."""
        from meterline.jobs.registry import runner

        jobs = runner(self._db, self._db.settings)
        jobs.ensure_maintenance()
        return jobs.drain()

    def record(
        self,
        *,
        customer: str,
        type: str,
        quantity: Any = 1,
        properties: dict[str, Any] | None = None,
        id: str | None = None,
        subject: str | None = None,
        timestamp: datetime | None = None,
    ) -> Recorded:
        """Record one event (durable when this returns). The answer is true when stored
        now, false when this id was recorded before with the same content; its
        ``warnings`` say which meter of its type does not count it, and why
        (``unmetered``, ``filtered_out``, ``missing_value`` …): never a silent zero."""
        raw: dict[str, Any] = {"type": type, "customer": customer, "quantity": str(quantity)}
        for name, value in (("properties", properties), ("id", id), ("subject", subject)):
            if value is not None:
                raw[name] = value
        if timestamp is not None:
            raw["timestamp"] = timestamp.isoformat()
        with self._db.write() as session:
            policy = pipeline.policy(session, self.workspace_id)
            valid, rejected = pipeline.check([raw], policy)
            if rejected:
                found = rejected[0]
                raise ValidationFailed(
                    found.message, errors=[FieldError("event", found.code, found.message)]
                )
            outcome = pipeline.record(session, policy, valid, strategies=self._strategies)
            if outcome.rejections:
                found = outcome.rejections[0]
                raise ValidationFailed(
                    found.message, errors=[FieldError("event", found.code, found.message)]
                )
        return Recorded(
            outcome.accepted == 1,
            [IngestError(index=0, code=w.code, message=w.message) for w in outcome.warnings],
        )

    def check(
        self,
        *,
        customer: str,
        feature: str,
        quantity: Any = 1,
        consume: bool = False,
        **fields: Any,
    ) -> CheckResponse:
        """SPEC §4: ``.allowed``, ``.reason``, ``.limits``, ``.credits``."""
        request = CheckRequest(
            customer=customer,
            feature=feature,
            quantity=Decimal(str(quantity)),
            consume=consume,
            **fields,
        )
        with self._db.write() as session:
            now = utc_now()
            found = entitlements.cached_standing(
                self._standings, session, self.workspace_id, customer
            )
            decision = entitlements.check(
                session, self.workspace_id, request, found, now, self._strategies
            )
        return entitlements.to_response(request, decision)

    def consume(
        self, *, customer: str, feature: str, quantity: Any = 1, **fields: Any
    ) -> CheckResponse:
        """``check(..., consume=True)``."""
        return self.check(
            customer=customer, feature=feature, quantity=quantity, consume=True, **fields
        )

    # -- reservations -------------------------------------------------------------------------

    def reserve(
        self, *, customer: str, feature: str, quantity: Any, ttl_seconds: int = 300, **fields: Any
    ) -> ReservationRead:
        request = ReservationCreate(
            customer=customer, feature=feature, quantity=quantity, ttl_seconds=ttl_seconds, **fields
        )
        with self._db.write() as session:
            now = utc_now()
            found = entitlements.cached_standing(
                self._standings, session, self.workspace_id, customer
            )
            held = reservations.hold(
                session, self.workspace_id, request, found, now, self._strategies
            )
            if held.reservation is None:
                return reservations.denied(request, held.decision)
            return reservations.to_read(session, held.reservation, now, held.decision)

    def settle(self, reservation_id: str, quantity: Any, **fields: Any) -> ReservationRead:
        data = ReservationSettle(quantity=quantity, **fields)
        with self._db.write() as session:
            now = utc_now()
            closed = reservations.settle(
                session, self.workspace_id, reservation_id, data, now, self._strategies
            )
            return reservations.to_read(session, closed, now)

    def release(self, reservation_id: str) -> ReservationRead:
        with self._db.write() as session:
            now = utc_now()
            closed = reservations.release(session, self.workspace_id, reservation_id, now)
            return reservations.to_read(session, closed, now)

    # -- reads --------------------------------------------------------------------------------

    def entitlements(self, customer: str) -> EntitlementsRead:
        with self._db.read() as session:
            now = utc_now()
            found = entitlements.cached_standing(
                self._standings, session, self.workspace_id, customer
            )
            return entitlements.entitlements(session, self.workspace_id, found, customer, now)

    def usage_history(self, customer: str, limit: int = 12) -> UsageHistory:
        with self._db.read() as session:
            return invoicing.usage_history(session, self.workspace_id, customer, utc_now(), limit)

    def usage_forecast(self, customer: str) -> ForecastRead:
        with self._db.read() as session:
            return pricing.forecast(session, self.workspace_id, customer, utc_now())

    def credit_transactions(
        self, customer: str, *, limit: int = 50, after: str | None = None
    ) -> TransactionList:
        credits.refresh(self._db, self.workspace_id, customer, utc_now())
        with self._db.read() as session:
            page = credits.transactions(
                session, self.workspace_id, customer, limit=limit, after=after
            )
        return TransactionList(data=page.items, next_cursor=page.next_cursor)

    def invoices(
        self,
        *,
        customer: str | None = None,
        status: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> InvoiceList:
        with self._db.read() as session:
            page = invoicing.list_page(
                session,
                self.workspace_id,
                customer=customer,
                status=status,
                period_from=None,
                period_to=None,
                limit=limit,
                after=after,
            )
        return InvoiceList(data=page.items, next_cursor=page.next_cursor)

    def invoice(self, invoice_id: str) -> InvoiceRead:
        with self._db.read() as session:
            return invoicing.to_read(
                session, invoicing.get(session, self.workspace_id, invoice_id), late=True
            )

    def upcoming_invoice(self, customer: str) -> InvoiceRead:
        with self._db.read() as session:
            return invoicing.upcoming(session, self.workspace_id, customer, utc_now())

    # -- admin --------------------------------------------------------------------------------

    def debit_credits(self, *, customer: str, amount: Any, **fields: Any) -> TransactionRead:
        data = DebitCreate(amount=amount, **fields)
        with self._db.write() as session:
            return credits.debit(session, self.workspace_id, customer, data, utc_now())

    def reset_limits(
        self, *, customer: str, window: str, feature: str | None = None
    ) -> EntitlementsRead:
        data = LimitReset.model_validate({"window": window, "feature": feature})
        with self._db.write() as session:
            now = utc_now()
            found = entitlements.cached_standing(
                self._standings, session, self.workspace_id, customer
            )
            entitlements.reset(session, self.workspace_id, found, customer, data, now)
            return entitlements.entitlements(session, self.workspace_id, found, customer, now)

    def finalize_invoice(self, invoice_id: str) -> InvoiceRead:
        with self._db.write() as session:
            found = invoicing.finalize(session, self.workspace_id, invoice_id, utc_now())
            return invoicing.to_read(session, found)

    def void_invoice(self, invoice_id: str) -> InvoiceRead:
        with self._db.write() as session:
            found = invoicing.void(session, self.workspace_id, invoice_id, utc_now())
            return invoicing.to_read(session, found)

    def void_event(self, event_id: str, *, reason: str | None = None) -> EventRead:
        """Stop counting a stored event everywhere (``POST /v1/events/{id}/void``)."""
        with self._db.write() as session:
            return voids.void(session, self.workspace_id, event_id, reason, utc_now())
