"""Entitlements: what a customer's plan allows now, decided against database counters.

``check`` is the real-time decision of SPEC §4. With ``consume`` it decides and records
in one transaction, holding the (meter, customer) guard, so no two consumers can both
take the last unit: hard limits are never overshot and nothing allowed is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from meterline.alerts import service as alerts
from meterline.credits import ledger
from meterline.credits import service as credits
from meterline.credits.costs import Strategies
from meterline.customers import service as customers
from meterline.customers.models import Customer
from meterline.entitlements import onecall
from meterline.entitlements.schemas import (
    CheckRequest,
    CheckResponse,
    CreditsRead,
    EntitlementsRead,
    FeatureEntitlement,
    LimitRead,
    LimitReset,
    Reason,
    ReservationCreate,
)
from meterline.errors import Conflict, FieldError, MeterlineError, NotCounted, NotFound, invalid
from meterline.ingestion import store
from meterline.ingestion.validation import Rejection, ValidEvent, validate
from meterline.kit import rawsql
from meterline.kit.cache import TTLCache
from meterline.kit.decimals import CONTEXT, ZERO
from meterline.kit.ids import new_id
from meterline.kit.periods import next_window, window_floor
from meterline.meters import counters, rollups
from meterline.meters import service as meters
from meterline.meters.aggregation import (
    MeterSpec,
    ValueProblem,
    contribute,
    excluded_by,
    unit_divisor,
    with_value,
)
from meterline.meters.usage import total
from meterline.plans.schemas import Feature, Limit
from meterline.recording import pipeline
from meterline.subscriptions import service as subscriptions
from meterline.subscriptions.schemas import Period
from meterline.workspaces import terms as workspace_terms


class DecisionUnavailable(MeterlineError):
    """The database could not decide in time: the answer is a denial (fail closed)."""

    status = 503
    code = "decision_unavailable"
    title = "Decision unavailable"
    default_detail = "Meterline could not decide now; the request is denied. Retry later."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, extra={"allowed": False, "reason": "unavailable"})


class EventConflict(Conflict):
    code = "conflict"


# -- who the customer is and what it is on (cached per process) -------------------------

STANDING_SECONDS = 60  # a cached standing is also dropped at once when terms change


@dataclass(frozen=True)
class Standing:
    customer_id: int
    external_id: str
    billing_id: int
    billing_external_id: str
    zone: ZoneInfo
    terms: subscriptions.Terms
    specs: dict[str, MeterSpec]  # every feature of every plan in the terms
    version: int  # the workspace's terms version it was read at
    # Every meter of those features' event types (what a recorded event folds into).
    type_specs: dict[str, list[MeterSpec]]


def standing(
    session: Session,
    workspace_id: int,
    external_id: str,
    plans_cache: subscriptions.PlanCache | None = None,
    version: int = 0,
) -> Standing | None:
    customer = customers.find(session, workspace_id, external_id)
    if customer is None:
        return None
    billing_id = customers.root_of(session, customer)
    billing = customer if billing_id == customer.id else session.get(Customer, billing_id)
    assert billing is not None  # a foreign key
    terms = subscriptions.terms(session, workspace_id, billing_id, plans_cache, version)
    keys = {key for _, plan in terms.plans.values() for key in plan.features}
    found = meters.by_keys(session, workspace_id, keys)
    specs = {key: rollups.spec_of(meter) for key, meter in found.items()}
    return Standing(
        customer.id,
        customer.external_id,
        billing_id,
        billing.external_id,
        ZoneInfo(billing.timezone),
        terms,
        specs,
        version,
        rollups.specs_by_type(session, workspace_id, {s.event_type for s in specs.values()}),
    )


def cached_standing(
    cache: TTLCache[Any, Any], session: Session, workspace_id: int, external_id: str
) -> Standing | None:
    """``standing`` through a per-process cache (which also keeps parsed plans), used
    only while the workspace's terms version is the one it was read at: any change to
    plans, subscriptions, customers or meters, through any process, is seen at once.
    An unknown customer is not cached (the next event may create it)."""
    version = workspace_terms.version(session, workspace_id)
    key = (workspace_id, external_id)
    found: Standing | None = cache.get(key)
    if found is not None and found.version == version:
        return found
    found = standing(session, workspace_id, external_id, cache, version)
    if found is not None:
        cache.put(key, found)
    return found


# -- limit windows and their numbers -------------------------------------------------------


@dataclass
class LimitState:
    limit: Limit
    start: datetime
    end: datetime
    used: Decimal  # raw: events for count meters, seconds for duration meters
    held: Decimal = ZERO


@dataclass
class Decision:
    allowed: bool
    reason: Reason
    limits: list[LimitState] = field(default_factory=list)
    spec: MeterSpec | None = None
    event_id: str | None = None
    duplicate: bool = False
    credits: CreditsRead | None = None  # balance and what the usage costs


def account_of(workspace_id: int, standing: Standing) -> credits.Account:
    return credits.Account(
        workspace_id,
        standing.billing_id,
        standing.billing_external_id,
        standing.zone,
        standing.terms,
    )


@dataclass
class Wallet:
    """What a decision knows of the customer's credits."""

    balance: Decimal
    required: Decimal
    available: Decimal
    book: ledger.Book | None  # locked (a consume or hold that costs credits)

    def covers(self) -> bool:
        return self.required <= self.available

    def read(self) -> CreditsRead:
        balance = self.book.balance if self.book is not None else self.balance
        return CreditsRead(balance=balance, required=self.required)


def window_of(standing: Standing, limit: Limit, now: datetime) -> tuple[datetime, datetime]:
    if limit.window == "period":
        period = standing.terms.period_at(now, standing.zone)
        assert period is not None  # a feature is only found while a plan is in force
        return period
    start = window_floor(now, limit.window, standing.zone)
    return start, next_window(start, limit.window, standing.zone)


def _make_counter(
    session: Session,
    workspace_id: int,
    standing: Standing,
    spec: MeterSpec,
    limit: Limit,
    now: datetime,
    *,
    counts_from: datetime | None = None,
) -> Decimal:
    """Make (or remake) the counter of ``limit``'s current window under the guard, from
    the rollups: what was used in ``[counts_from, end)`` (default: the whole window)."""
    counters.guard(session, [(spec.id, standing.billing_id)])
    start, end = window_of(standing, limit, now)
    since = counts_from or start
    used = _raw_total(session, workspace_id, spec, standing.billing_id, since, end)
    _store_counter(
        session, standing.billing_id, spec.id, limit.window, start, end, since, used, now
    )
    return used


def _raw_total(
    session: Session,
    workspace_id: int,
    spec: MeterSpec,
    customer_id: int,
    start: datetime,
    end: datetime,
) -> Decimal:
    state = total(session, workspace_id, spec, customer_id, start, end)
    return Decimal(state.count) if spec.aggregation == "count" else state.sum


def limit_states(
    session: Session,
    workspace_id: int,
    standing: Standing,
    spec: MeterSpec,
    feature: Feature,
    now: datetime,
    *,
    write: bool,
) -> list[LimitState]:
    """Each limit of the feature with its window's usage and live holds. With ``write``
    (inside a write transaction) missing counters are made and kept; otherwise they
    are computed for this answer only."""
    if not feature.limits:
        return []
    d = rawsql.driver(session)
    stored = {}
    held = ZERO
    # One round trip: the counters of current windows, and the amounts of live holds.
    for row_kind, window, start, value in rawsql.run(
        session,
        "SELECT 'c', kind, window_start, used FROM usage_counters WHERE customer_id = "
        f"{d.mark} AND meter_id = {d.mark} AND window_end > {d.mark} "
        "UNION ALL SELECT 'h', NULL, NULL, amount FROM reservations WHERE customer_id = "
        f"{d.mark} AND meter_id = {d.mark} AND status = 'held' AND expires_at > {d.mark}",
        (standing.billing_id, spec.id, d.timestamp(now)) * 2,
    ):
        if row_kind == "c":
            stored[(window, d.parse_timestamp(start))] = Decimal(value)
        else:
            held = CONTEXT.add(held, Decimal(value))
    states = []
    for limit in feature.limits:
        start, end = window_of(standing, limit, now)
        used = stored.get((limit.window, start))
        if used is None:
            used = (
                _make_counter(session, workspace_id, standing, spec, limit, now)
                if write
                else _raw_total(session, workspace_id, spec, standing.billing_id, start, end)
            )
        states.append(LimitState(limit, start, end, used, held))
    return states


def _store_counter(
    session: Session,
    customer_id: int,
    meter_id: int,
    window: str,
    start: datetime,
    end: datetime,
    counts_from: datetime,
    used: Decimal,
    now: datetime,
) -> None:
    """Keep a counter (made under the guard); counters of windows past are dropped."""
    d = rawsql.driver(session)
    rawsql.run(
        session,
        f"DELETE FROM usage_counters WHERE customer_id = {d.mark} AND meter_id = {d.mark} "
        f"AND window_end <= {d.mark}",
        (customer_id, meter_id, d.timestamp(now)),
    )
    rawsql.run(
        session,
        "INSERT INTO usage_counters (customer_id, meter_id, kind, window_start, window_end, "
        f"counts_from, used) VALUES ({', '.join([d.mark] * 7)}) "
        "ON CONFLICT (customer_id, meter_id, kind, window_start) DO UPDATE SET "
        "counts_from = excluded.counts_from, used = excluded.used",
        (
            customer_id,
            meter_id,
            window,
            d.timestamp(start),
            d.timestamp(end),
            d.timestamp(counts_from),
            d.decimal(used),
        ),
    )


def hard_cap(limit: Limit, spec: MeterSpec) -> Decimal | None:
    """What a hard limit allows in the meter's raw units (None: not enforced)."""
    if limit.enforcement == "soft" or limit.max is None:
        return None
    return CONTEXT.multiply(limit.max, unit_divisor(spec))


def fits(states: list[LimitState], amount: Decimal, spec: MeterSpec) -> bool:
    """Whether ``amount`` more (raw units) stays within every hard limit."""
    return all(
        (cap := hard_cap(s.limit, spec)) is None
        or CONTEXT.add(CONTEXT.add(s.used, s.held), amount) <= cap
        for s in states
    )


def weigh(
    session: Session,
    workspace_id: int,
    standing: Standing,
    feature: Feature,
    spec: MeterSpec,
    request: CheckRequest | ReservationCreate,
    amount: Decimal,
    now: datetime,
    spend: bool,
    strategies: Strategies | None,
) -> tuple[list[LimitState], Wallet]:
    """What a check or hold decides on: the feature's limits, and the credit side — the
    usage's cost and the balance that must cover it (less credits held by
    reservations). When the usage will be ``spend``-t and costs something, the ledger
    is locked for the rest of the transaction."""
    acct = account_of(workspace_id, standing)
    required = credits.cost_of(
        acct,
        spec,
        request.customer,
        amount,
        request.quantity,
        request.properties,
        now,
        strategies,
    )
    if required > 0 and spend:
        book = credits.ensure(session, acct, now)
        credits.announce(session, book.flush())
        balance = book.balance
    else:
        book = None
        balance = credits.balance(session, acct, now)
    available = balance
    if required > 0:
        available = CONTEXT.subtract(balance, ledger.held(session, acct.billing_id, now))
    states = limit_states(session, workspace_id, standing, spec, feature, now, write=True)
    return states, Wallet(balance, required, available, book)


def refusal(
    states: list[LimitState], purse: Wallet, amount: Decimal, spec: MeterSpec
) -> Decision | None:
    """The denial of usage that passes a hard limit (first) or costs more credits than
    are available; None when it may go ahead."""
    if not fits(states, amount, spec):
        return Decision(False, "limit_exceeded", states, spec, credits=purse.read())
    if not purse.covers():
        return Decision(False, "insufficient_credits", states, spec, credits=purse.read())
    return None


def limit_reads(decision: Decision) -> list[LimitRead]:
    """The decision's limits as answered (none when it never reached a meter)."""
    spec = decision.spec
    return [] if spec is None else [limit_read(s, spec) for s in decision.limits]


def limit_read(state: LimitState, spec: MeterSpec) -> LimitRead:
    scale = unit_divisor(spec)
    used = CONTEXT.divide(state.used, scale)
    held = CONTEXT.divide(state.held, scale)
    maximum = state.limit.max
    remaining = None
    if maximum is not None:
        remaining = max(ZERO, CONTEXT.subtract(CONTEXT.subtract(maximum, used), held))
    return LimitRead(
        window=state.limit.window,
        enforcement=state.limit.enforcement,
        max=maximum,
        used=used,
        held=held,
        remaining=remaining,
        exceeded=remaining is not None and remaining <= 0,
        window_start=state.start,
        resets_at=state.end,
    )


# -- deciding ---------------------------------------------------------------------------


def feature_of(
    standing: Standing | None, key: str, now: datetime
) -> tuple[Reason, Feature | None, MeterSpec | None]:
    if standing is None:
        return "unknown_customer", None, None
    plan = standing.terms.plan_at(now)
    feature = plan[1].features.get(key) if plan is not None else None
    spec = standing.specs.get(key)
    if feature is None or spec is None:
        return "feature_not_in_plan", None, None
    if not feature.enabled:
        return "feature_disabled", feature, spec
    return "ok", feature, spec


def amount_of(spec: MeterSpec, quantity: Decimal, properties: dict[str, Any]) -> Decimal:
    """What the usage would add to the meter (raw units). 422 ``not_counted`` when the
    meter would not count it — its filter leaves the event out, or the value it sums is
    missing or unusable — so no consume, hold or settlement is ever allowed for free."""
    if spec.aggregation == "count" and quantity != 1:
        raise invalid(
            "quantity",
            "quantity_not_counted",
            f"{spec.key!r} counts events: a check or hold covers one event (quantity 1).",
        )
    try:
        found = contribute(spec, quantity, with_value(spec, quantity, properties))
    except ValueProblem as problem:
        message = f"meter {spec.key!r} would not count this usage: {problem.message}"
        raise NotCounted(
            message, errors=[FieldError(_field_of(spec), problem.code, message)]
        ) from problem
    if found is None:
        reason = excluded_by(spec, properties) or "its filter excludes it"
        message = f"{reason}: send the properties it counts"
        raise NotCounted(message, errors=[FieldError("properties", "filtered_out", message)])
    return found.value


def _field_of(spec: MeterSpec) -> str:
    return "quantity" if spec.value_property is None else f"properties.{spec.value_property}"


def usage_event(
    spec: MeterSpec,
    customer: str,
    event_id: str | None,
    quantity: Decimal,
    subject: str | None,
    properties: dict[str, Any],
    now: datetime,
) -> ValidEvent:
    raw = {
        "type": spec.event_type,
        "customer": customer,
        "quantity": str(quantity),
        "properties": with_value(spec, quantity, properties),
    }
    if event_id is not None:
        raw["id"] = event_id
    if subject is not None:
        raw["subject"] = subject
    checked = validate(raw, 0, now, timedelta(0))
    if isinstance(checked, Rejection):
        raise invalid(
            "id" if "`id`" in checked.message else "properties", checked.code, checked.message
        )
    return checked


def record(
    session: Session,
    workspace_id: int,
    event: ValidEvent,
    standing: Standing | None = None,
    *,
    strategies: Strategies | None = None,
    reference_type: str = "event",
    watch: bool = True,
    cost: Decimal | None = None,
) -> None:
    """Store usage decided here as an ordinary event (rollups, counters, idempotency,
    credits), with what the customer's standing already knows (ids, meters, terms).
    ``watch=False``: the caller raises the usage alerts itself (``crossed``).
    ``cost``: the credits the decision priced it at — debited as such, not priced again."""
    policy = pipeline.Policy(workspace_id, False, timedelta(0))
    if event.event_id is None:
        event.event_id = new_id("evt")
    decided = None if cost is None else {event.event_id: cost}
    if standing is None:
        outcome = pipeline.record(
            session,
            policy,
            [event],
            strategies=strategies,
            reference_type=reference_type,
            decided=decided,
        )
    else:
        known = {event.customer: (standing.customer_id, standing.billing_id)}
        outcome = pipeline.record(
            session,
            policy,
            [event],
            known,
            standing.type_specs,
            accounts={standing.billing_id: account_of(workspace_id, standing)},
            strategies=strategies,
            reference_type=reference_type,
            watch=watch,
            decided=decided,
        )
    if outcome.rejections:
        raise EventConflict(outcome.rejections[0].message)


def asked(
    standing: Standing | None,
    key: str,
    quantity: Decimal,
    properties: dict[str, Any],
    now: datetime,
) -> Decision | tuple[Standing, Feature, MeterSpec, Decimal]:
    """What a check or hold is about — the customer's standing, the feature, its meter
    and the amount asked — or the denial when there is nothing to ask for."""
    reason, feature, spec = feature_of(standing, key, now)
    if reason != "ok" or feature is None or spec is None or standing is None:
        return Decision(False, reason, spec=spec)
    return standing, feature, spec, amount_of(spec, quantity, properties)


def check(
    session: Session,
    workspace_id: int,
    request: CheckRequest,
    standing: Standing | None,
    now: datetime,
    strategies: Strategies | None = None,
) -> Decision:
    found = asked(standing, request.feature, request.quantity, request.properties, now)
    if isinstance(found, Decision):
        return found
    standing, feature, spec, amount = found
    event = None
    if request.consume:
        event = usage_event(
            spec,
            request.customer,
            request.id,
            request.quantity,
            request.subject,
            request.properties,
            now,
        )
        if onecall.usable(session):
            decided = _consume_in_one(
                session,
                workspace_id,
                request,
                standing,
                feature,
                spec,
                amount,
                event,
                now,
                strategies,
            )
            if decided is not None:
                return decided
        counters.guard(session, [(spec.id, standing.billing_id)])
    stored = (
        store.stored_hash(session, workspace_id, request.id)
        if event is not None and request.id is not None
        else None
    )
    if event is not None and stored is not None and stored != event.content_hash:
        raise EventConflict(f"id {request.id!r} was already used for different content")
    spend = event is not None and stored is None
    states, purse = weigh(
        session, workspace_id, standing, feature, spec, request, amount, now, spend, strategies
    )
    if stored is not None:  # consumed before: answered as then, counted once
        return Decision(True, "ok", states, spec, request.id, True, purse.read())
    if (refused := refusal(states, purse, amount, spec)) is not None:
        return refused
    if event is None:
        return Decision(True, "ok", states, spec, credits=purse.read())
    record(
        session,
        workspace_id,
        event,
        standing,
        strategies=strategies,
        watch=False,
        cost=purse.required,
    )
    return consumed(session, workspace_id, standing, spec, states, amount, now, event, purse.read())


def consumed(
    session: Session,
    workspace_id: int,
    standing: Standing,
    spec: MeterSpec,
    states: list[LimitState],
    amount: Decimal,
    now: datetime,
    event: ValidEvent,
    wallet: CreditsRead,
) -> Decision:
    """The answer to a consume just recorded: its alerts raised, its limits counting it."""
    crossed(session, workspace_id, standing, spec, states, amount, now)
    for state in states:
        state.used = CONTEXT.add(state.used, amount)
    return Decision(True, "ok", states, spec, event.event_id, credits=wallet)


def _consume_in_one(
    session: Session,
    workspace_id: int,
    request: CheckRequest,
    standing: Standing,
    feature: Feature,
    spec: MeterSpec,
    amount: Decimal,
    event: ValidEvent,
    now: datetime,
    strategies: Strategies | None,
) -> Decision | None:
    """The common consume decided and recorded in one PostgreSQL call
    (``entitlements.onecall``): the same answer and the same rows as the ordinary path,
    or None when that path must take it (the usage costs credits, say)."""
    acct = account_of(workspace_id, standing)
    kin = standing.type_specs.get(spec.event_type, [])
    if strategies and any(each.key in strategies for each in kin):
        return None
    cost = credits.cost_of(
        acct, spec, request.customer, amount, request.quantity, request.properties, now, None
    )
    if cost != 0:
        return None
    if event.event_id is None:
        event.event_id = new_id("evt")
    spans = [window_of(standing, limit, now) for limit in feature.limits]
    windows = [
        onecall.Window(limit.window, start, hard_cap(limit, spec))
        for limit, (start, _) in zip(feature.limits, spans, strict=True)
    ]
    due = credits.allocation_due(acct, now)
    answer = onecall.consume(
        session,
        workspace_id,
        (standing.customer_id, standing.billing_id),
        spec,
        kin,
        windows,
        amount,
        event,
        None if due is None else due.key,
        now,
    )
    if answer is None:
        return None
    states = [
        LimitState(limit, start, end, used, answer.held)
        for limit, (start, end), used in zip(feature.limits, spans, answer.used, strict=True)
    ]
    read = CreditsRead(balance=answer.balance, required=ZERO)
    if answer.status == "refused":
        return Decision(False, "limit_exceeded", states, spec, credits=read)
    return consumed(session, workspace_id, standing, spec, states, amount, now, event, read)


def crossed(
    session: Session,
    workspace_id: int,
    standing: Standing,
    spec: MeterSpec,
    states: list[LimitState],
    amount: Decimal,
    now: datetime,
) -> None:
    """Raise the usage alerts that ``amount`` more crosses (a consume knows its limits'
    usage already: no query unless a threshold is crossed). The same alerts, keyed the
    same, as the evaluation job raises for usage that arrives as events."""
    scale = unit_divisor(spec)
    for state in states:
        maximum = state.limit.max
        if maximum is None:
            continue
        before = CONTEXT.divide(state.used, scale)
        after = CONTEXT.divide(CONTEXT.add(state.used, amount), scale)
        for share in state.limit.alert_at:
            if before < CONTEXT.multiply(share, maximum) <= after:
                alerts.raise_alert(
                    session,
                    workspace_id,
                    now=now,
                    **alerts.usage_alert(
                        standing.billing_id,
                        spec.key,
                        state.limit.window,
                        state.start,
                        state.end,
                        state.limit.enforcement,
                        maximum,
                        after,
                        share,
                    ),
                )


def to_response(request: CheckRequest, decision: Decision) -> CheckResponse:
    return CheckResponse(
        allowed=decision.allowed,
        reason=decision.reason,
        feature=request.feature,
        customer=request.customer,
        event_id=decision.event_id,
        duplicate=decision.duplicate,
        limits=limit_reads(decision),
        credits=decision.credits,
    )


# -- entitlements and resets ----------------------------------------------------------------


def entitlements(
    session: Session,
    workspace_id: int,
    standing: Standing | None,
    external_id: str,
    now: datetime,
) -> EntitlementsRead:
    if standing is None:
        raise NotFound(f"No customer {external_id!r}.")
    plan = standing.terms.plan_at(now)
    period = standing.terms.period_at(now, standing.zone)
    features = []
    for key, feature in plan[1].features.items() if plan else ():
        spec = standing.specs.get(key)
        if spec is None:
            continue
        states = (
            limit_states(session, workspace_id, standing, spec, feature, now, write=False)
            if feature.enabled
            else []
        )
        limits = [limit_read(s, spec) for s in states]
        features.append(
            FeatureEntitlement(
                feature=key,
                enabled=feature.enabled,
                unit=spec.unit,
                included=feature.included,
                limits=limits,
                exceeded=any(r.exceeded and r.enforcement == "hard" for r in limits),
            )
        )
    return EntitlementsRead(
        customer=standing.external_id,
        billed_to=standing.billing_external_id,
        plan=plan[0] if plan else None,
        subscription=standing.terms.subscription_id,
        period=Period(start=period[0], end=period[1]) if period else None,
        features=features,
    )


def reset(
    session: Session,
    workspace_id: int,
    standing: Standing | None,
    external_id: str,
    data: LimitReset,
    now: datetime,
) -> None:
    """The current window of the named limit(s) counts from ``now`` for enforcement;
    events and billing usage stay as they are."""
    if standing is None:
        raise NotFound(f"No customer {external_id!r}.")
    plan = standing.terms.plan_at(now)
    features = plan[1].features if plan else {}
    if data.feature is not None and data.feature not in features:
        raise invalid("feature", "feature_not_in_plan", f"{data.feature!r} is not in the plan.")
    matched = False
    for key, feature in features.items():
        spec = standing.specs.get(key)
        if spec is None or (data.feature is not None and key != data.feature):
            continue
        for limit in feature.limits:
            if limit.window != data.window:
                continue
            matched = True
            _make_counter(session, workspace_id, standing, spec, limit, now, counts_from=now)
    if not matched:
        raise invalid(
            "window",
            "no_such_limit",
            f"No {data.window} limit on {data.feature or 'any feature'} in the plan.",
        )
