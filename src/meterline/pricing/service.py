"""What a customer's usage costs: the current period, past periods and a forecast.

Every view is a ``Statement`` (``pricing.statement``) of one billing period, measured
from the meters' rollups at the time of asking: events that arrive late are counted,
whatever an invoice already said (invoices keep what they billed).

Forecast method (linear): a feature whose meter adds up (count, sum, duration) is
projected to ``used * period_length / elapsed`` at the end of the period; any other
aggregation (max, latest, unique count, ...) is projected to stay where it is. A limit
is reached, at the rate of its window so far (``used / time since the window
started``), at ``now + remaining / rate``, when that falls before the window resets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from meterline.credits import service as credits
from meterline.customers import service as customers
from meterline.entitlements import service as entitlements
from meterline.errors import NotFound, invalid
from meterline.kit.decimals import CONTEXT
from meterline.meters.aggregation import MeterSpec
from meterline.meters.usage import totals
from meterline.plans.schemas import PlanFields
from meterline.pricing.rating import rate
from meterline.pricing.schemas import (
    BaseFee,
    CreditBalance,
    FeatureForecast,
    FeatureUsage,
    ForecastRead,
    LimitForecast,
    UsageRead,
)
from meterline.pricing.statement import Part, Statement, statement
from meterline.subscriptions.schemas import Period
from meterline.subscriptions.service import Bounds, Terms

ADDITIVE = {"count", "sum", "duration"}
_PROJECTION = Decimal("0.000001")
FORECAST_METHOD = (
    "linear: count, sum and duration meters are projected to used x period length / "
    "time elapsed; other aggregations stay at their current value. Limits are reached "
    "at now + remaining / (window's usage / time since the window started)."
)


class NoPlan(NotFound):
    code = "no_plan"
    title = "No plan"


def measure(
    session: Session,
    workspace_id: int,
    billing_id: int,
    specs: Mapping[str, MeterSpec],
    keys: Iterable[str],
    start: datetime,
    end: datetime,
) -> dict[str, Decimal]:
    """What each feature's meter measured for the customer over ``[start, end)``."""
    found = [specs[key] for key in keys if key in specs]
    states = totals(session, workspace_id, found, billing_id, start, end)
    return {spec.key: states[spec.id].result(spec) for spec in found}


def period_statement(
    session: Session,
    workspace_id: int,
    billing_id: int,
    terms: Terms,
    bounds: Bounds,
    specs: Mapping[str, MeterSpec],
    zone: ZoneInfo,
    used: Mapping[str, Decimal] | None = None,
) -> Statement:
    """The statement of one period (``used``: measured already, else measured here)."""
    parts = [
        Part(terms.plans[s.plan_id][0], terms.plans[s.plan_id][1], s.start, s.end)
        for s in bounds.segments
    ]
    features = parts[-1].fields.features
    if used is None:
        used = measure(session, workspace_id, billing_id, specs, features, bounds.start, bounds.end)
    units = {key: spec.unit for key, spec in specs.items()}
    return statement(parts, (bounds.full_start, bounds.full_end), zone, used, units)


def to_read(found: Statement, customer: str, billed_to: str, balance: Decimal) -> UsageRead:
    return UsageRead(
        customer=customer,
        billed_to=billed_to,
        plan=found.plan,
        currency=found.currency,
        period=Period(start=found.start, end=found.end),
        features=[
            FeatureUsage(
                feature=line.feature,
                unit=line.unit,
                used=line.used,
                included=line.included,
                billable=line.billable,
                amount=line.amount,
            )
            for line in found.usage
        ],
        base_fee=found.base_fee,
        base_fees=[
            BaseFee(
                plan=fee.plan,
                description=fee.description,
                start=fee.start,
                end=fee.end,
                days=fee.days,
                period_days=fee.period_days,
                amount=fee.amount,
            )
            for fee in found.fees
        ],
        total=found.total,
        credits=CreditBalance(balance=balance),
    )


def _standing(session: Session, workspace_id: int, external_id: str) -> entitlements.Standing:
    found = entitlements.standing(session, workspace_id, external_id)
    if found is None:
        raise NotFound(f"No customer {external_id!r}.")
    return found


def billing_id(session: Session, workspace_id: int, external_id: str) -> int:
    customer = customers.get(session, workspace_id, external_id)
    return customers.root_of(session, customer)


def _current(standing: entitlements.Standing, now: datetime) -> Bounds:
    bounds = standing.terms.bounds_at(now, standing.zone)
    if bounds is None:
        raise NoPlan(
            f"{standing.external_id!r} has no subscription and the workspace no default plan."
        )
    return bounds


def _statement_of(
    session: Session, workspace_id: int, standing: entitlements.Standing, bounds: Bounds
) -> Statement:
    return period_statement(
        session,
        workspace_id,
        standing.billing_id,
        standing.terms,
        bounds,
        standing.specs,
        standing.zone,
    )


def current_statement(
    session: Session,
    workspace_id: int,
    external_id: str,
    now: datetime,
    standing: entitlements.Standing | None = None,
) -> tuple[entitlements.Standing, Statement]:
    """The customer's standing and its current period's statement, as it stands now
    (``standing``: the customer's, read already in this transaction or cached at the
    workspace's current terms version)."""
    if standing is None:
        standing = _standing(session, workspace_id, external_id)
    return standing, _statement_of(session, workspace_id, standing, _current(standing, now))


def current(
    session: Session,
    workspace_id: int,
    external_id: str,
    now: datetime,
    features: Sequence[str] | None = None,
) -> UsageRead:
    """The current period, as it stands now; ``features`` keeps only those features'
    lines (the base fee and total stay the whole bill's). 422 ``unknown_feature`` for a
    feature the plan does not have: a filter is never silently ignored."""
    standing, found = current_statement(session, workspace_id, external_id, now)
    return usage_of(session, standing, found, features)


def usage_of(
    session: Session,
    standing: entitlements.Standing,
    found: Statement,
    features: Sequence[str] | None = None,
) -> UsageRead:
    """The usage read of a current period's statement (with the credit balance), kept
    to ``features`` when given."""
    balance = credits.balance_of(session, standing.billing_id)
    read = to_read(found, standing.external_id, standing.billing_external_id, balance)
    if features:
        known = {line.feature for line in read.features}
        unknown = sorted(set(features) - known)
        if unknown:
            raise invalid(
                "features",
                "unknown_feature",
                f"Not in the customer's plan: {', '.join(unknown)} (it has "
                f"{', '.join(sorted(known)) or 'no features'}).",
            )
        read.features = [line for line in read.features if line.feature in features]
    return read


def past_periods(
    session: Session, standing: entitlements.Standing, now: datetime
) -> Iterator[Bounds]:
    """The periods before the current one, newest first, back to the billing customer's
    creation or its subscription's start, whichever is earlier (subscriptions may be
    backdated)."""
    created = customers.created_at(session, standing.billing_id)
    if standing.terms.phases:
        created = min(created, standing.terms.phases[0].start)
    bounds = standing.terms.bounds_at(now, standing.zone)
    while bounds is not None and bounds.start > created:
        bounds = standing.terms.bounds_at(bounds.start - timedelta(microseconds=1), standing.zone)
        if bounds is None or bounds.end <= created:
            return
        yield bounds


def history(
    session: Session, workspace_id: int, external_id: str, now: datetime, limit: int
) -> list[tuple[Statement, UsageRead]]:
    standing = _standing(session, workspace_id, external_id)
    balance = credits.balance_of(session, standing.billing_id)
    found: list[tuple[Statement, UsageRead]] = []
    for bounds in past_periods(session, standing, now):
        if len(found) == limit:
            break
        item = _statement_of(session, workspace_id, standing, bounds)
        found.append(
            (item, to_read(item, standing.external_id, standing.billing_external_id, balance))
        )
    return found


def _projected(spec: MeterSpec | None, used: Decimal, elapsed: Decimal, length: Decimal) -> Decimal:
    if spec is None or spec.aggregation not in ADDITIVE or elapsed <= 0:
        return used
    projected = CONTEXT.divide(CONTEXT.multiply(used, length), elapsed)
    return projected.quantize(_PROJECTION, context=CONTEXT)


def _limit_forecasts(
    session: Session,
    workspace_id: int,
    standing: entitlements.Standing,
    key: str,
    now: datetime,
) -> list[LimitForecast]:
    plan = standing.terms.plan_at(now)
    spec = standing.specs.get(key)
    if plan is None or spec is None or not plan[1].features[key].enabled:
        return []
    feature = plan[1].features[key]
    states = entitlements.limit_states(
        session, workspace_id, standing, spec, feature, now, write=False
    )
    forecasts = []
    for state in states:
        read = entitlements.limit_read(state, spec)
        if read.max is None:
            continue
        reached_at = None
        elapsed = Decimal((now - state.start).total_seconds())
        spent = CONTEXT.add(read.used, read.held)
        if not read.exceeded and spent > 0 and elapsed > 0:
            left = CONTEXT.subtract(read.max, spent)
            seconds = CONTEXT.divide(CONTEXT.multiply(left, elapsed), spent)
            moment = now + timedelta(seconds=float(seconds))
            reached_at = moment if moment < state.end else None
        forecasts.append(
            LimitForecast(
                window=read.window,
                enforcement=read.enforcement,
                max=read.max,
                used=read.used,
                resets_at=read.resets_at,
                exceeded=read.exceeded,
                reached_at=reached_at,
            )
        )
    return forecasts


def forecast(session: Session, workspace_id: int, external_id: str, now: datetime) -> ForecastRead:
    return current_and_forecast(session, workspace_id, external_id, now)[2]


def current_and_forecast(
    session: Session, workspace_id: int, external_id: str, now: datetime, *, limits: bool = True
) -> tuple[entitlements.Standing, Statement, ForecastRead]:
    """The current period's statement (the upcoming invoice's lines and total) and its
    forecast, from one measurement of the period. ``limits=False`` leaves out when each
    limit will be reached (the dashboard's revenue snapshot needs only the amounts)."""
    standing = _standing(session, workspace_id, external_id)
    bounds = _current(standing, now)
    found = _statement_of(session, workspace_id, standing, bounds)
    elapsed = Decimal((now - bounds.start).total_seconds())
    length = Decimal((bounds.end - bounds.start).total_seconds())
    plan = standing.terms.plans[bounds.segments[-1].plan_id][1]
    features = []
    amount_total = found.base_fee
    for line in found.usage:
        projected = _projected(standing.specs.get(line.feature), line.used, elapsed, length)
        rated = rate(plan.features[line.feature], projected, found.currency)
        amount_total = CONTEXT.add(amount_total, rated.amount)
        features.append(
            FeatureForecast(
                feature=line.feature,
                unit=line.unit,
                used=line.used,
                projected=projected,
                included=rated.included,
                billable=rated.billable,
                amount=rated.amount,
                limits=_limit_forecasts(session, workspace_id, standing, line.feature, now)
                if limits
                else [],
            )
        )
    read = ForecastRead(
        customer=standing.external_id,
        billed_to=standing.billing_external_id,
        plan=found.plan,
        currency=found.currency,
        period=Period(start=found.start, end=found.end),
        as_of=now,
        method=FORECAST_METHOD,
        features=features,
        base_fee=found.base_fee,
        total=amount_total,
    )
    return standing, found, read


def last_period(
    session: Session, workspace_id: int, external_id: str, now: datetime
) -> tuple[entitlements.Standing, Bounds] | None:
    """The customer's standing and its last closed period (None: no period closed yet)."""
    standing = _standing(session, workspace_id, external_id)
    bounds = next(past_periods(session, standing, now), None)
    return None if bounds is None else (standing, bounds)


def what_if(
    session: Session,
    workspace_id: int,
    standing: entitlements.Standing,
    bounds: Bounds,
    plan_key: str,
    fields: PlanFields,
    specs: Mapping[str, MeterSpec],
) -> Statement:
    """What ``fields`` (a plan) would have billed for the period ``bounds`` of the
    customer's real usage: its features measured over that period, its base fee for the
    part of the period the customer was subscribed."""
    used = measure(
        session, workspace_id, standing.billing_id, specs, fields.features, bounds.start, bounds.end
    )
    units = {key: spec.unit for key, spec in specs.items()}
    parts = [Part(plan_key, fields, bounds.start, bounds.end)]
    return statement(parts, (bounds.full_start, bounds.full_end), standing.zone, used, units)
