"""Subscriptions: which plan a customer is on, when, and its billing periods.

A subscription is a run of phases (one plan each). ``change`` ends the phase in force
and starts one on the new plan, now or at the period's end; ``cancel`` sets the end.
A customer has at most one subscription that has not ended; a member of an
organization is on its organization's subscription and cannot have its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from meterline.customers import service as customers
from meterline.customers.models import Customer
from meterline.db import get_owned, newest_page
from meterline.errors import Conflict, invalid
from meterline.jobs import service as jobs
from meterline.kit.cache import TTLCache
from meterline.kit.ids import new_id
from meterline.kit.pagination import Page
from meterline.kit.periods import Anchor, Interval, full_period
from meterline.kit.time import utc_now
from meterline.plans import service as plans
from meterline.plans.models import Plan
from meterline.plans.schemas import PlanFields
from meterline.subscriptions.models import Subscription, SubscriptionPhase
from meterline.subscriptions.schemas import (
    Period,
    PhaseRead,
    SubscriptionCancel,
    SubscriptionChange,
    SubscriptionCreate,
    SubscriptionRead,
)
from meterline.webhooks import service as webhooks
from meterline.workspaces import service as workspaces
from meterline.workspaces import terms as workspace_terms

_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
CYCLE = "billing.cycle"  # the job that closes a subscription's periods (``invoicing``)


class SubscriptionExists(Conflict):
    code = "subscription_exists"
    title = "Subscription exists"


class SubscriptionEnded(Conflict):
    code = "subscription_ended"
    title = "Subscription ended"


# -- terms: what a billing customer is on (cached on the hot path) ----------------------


@dataclass(frozen=True)
class Phase:
    plan_id: int
    start: datetime
    end: datetime | None
    anchor: datetime


@dataclass(frozen=True)
class Segment:
    """One plan over part of a period."""

    plan_id: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Bounds:
    """A billing period ``[start, end)`` inside its whole period ``[full_start,
    full_end)`` (they differ for a first, last or cut-short period)."""

    start: datetime
    end: datetime
    full_start: datetime
    full_end: datetime
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Terms:
    """A billing customer's plans over time: its subscription's phases and, outside
    them (before it starts, after it ends, or with none), the workspace's default plan
    on calendar periods."""

    subscription_id: str | None
    kind: Anchor
    end: datetime | None
    phases: tuple[Phase, ...]
    plans: dict[int, tuple[str, PlanFields]]  # plan id → (key, definition)
    fallback: Phase | None = None  # the default plan

    def phase_at(self, moment: datetime) -> Phase | None:
        for phase in self.phases:
            if phase.start <= moment and (phase.end is None or moment < phase.end):
                return phase
        return self.fallback

    def plan_at(self, moment: datetime) -> tuple[str, PlanFields] | None:
        phase = self.phase_at(moment)
        return None if phase is None else self.plans[phase.plan_id]

    def period_at(self, moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
        found = self.bounds_at(moment, zone)
        return None if found is None else (found.start, found.end)

    def bounds_at(self, moment: datetime, zone: ZoneInfo) -> Bounds | None:
        """The billing period holding ``moment``, the whole period it is part of, and
        the plans in force over it.

        Phases that share an anchor (a change between plans of one interval) share a
        period grid: a change mid-period splits the period between the two plans. A
        change to another interval starts a new grid at the change, so the old period
        ends there; the subscription's start and end cut the first and last period."""
        phase = self.phase_at(moment)
        if phase is None:
            return None
        interval: Interval = self.plans[phase.plan_id][1].interval
        if phase is self.fallback:
            full_start, full_end = full_period(_EPOCH, interval, "calendar", zone, moment)
            # Cut where the subscription's phases begin or end around the gap.
            start = max([full_start, *(p.end for p in self.phases if p.end and p.end <= moment)])
            end = min([full_end, *(p.start for p in self.phases if p.start > moment)])
            return Bounds(start, end, full_start, full_end, (Segment(phase.plan_id, start, end),))
        full_start, full_end = full_period(phase.anchor, interval, self.kind, zone, moment)
        run = [p for p in self.phases if p.anchor == phase.anchor]
        start = max(full_start, run[0].start)
        end = full_end
        for limit in (run[-1].end, self.end):
            if limit is not None and limit < end:
                end = limit
        segments = tuple(
            Segment(p.plan_id, max(p.start, start), end if p.end is None else min(p.end, end))
            for p in run
            if p.start < end and (p.end is None or p.end > start)
        )
        return Bounds(start, end, full_start, full_end, segments)


PlanCache = TTLCache[Any, tuple[str, PlanFields]]


def terms(
    session: Session,
    workspace_id: int,
    billing_customer_id: int,
    plans_cache: PlanCache | None = None,
    version: int = 0,
) -> Terms:
    """What the customer is on. ``plans_cache`` keeps parsed plan definitions, by id
    and the workspace's terms ``version`` (a changed plan is a new entry)."""
    sub = _open_subscription(session, billing_customer_id)
    default = workspaces.get(session, workspace_id).default_plan_id
    fallback = None if default is None else Phase(default, _EPOCH, None, _EPOCH)
    phases = (
        ()
        if sub is None
        else tuple(Phase(p.plan_id, p.start_at, p.end_at, p.anchor_at) for p in sub.phases)
    )
    ids = {p.plan_id for p in phases} | ({default} if default is not None else set())
    return Terms(
        sub.id if sub is not None else None,
        sub.billing_anchor if sub is not None else "calendar",  # type: ignore[arg-type]
        sub.end_at if sub is not None else None,
        phases,
        {plan_id: _plan_entry(session, plan_id, plans_cache, version) for plan_id in ids},
        fallback,
    )


def terms_of(session: Session, sub: Subscription, plans_cache: PlanCache | None = None) -> Terms:
    """The subscription's own phases (no default plan), for its periods."""
    phases = tuple(Phase(p.plan_id, p.start_at, p.end_at, p.anchor_at) for p in sub.phases)
    return Terms(
        sub.id,
        sub.billing_anchor,  # type: ignore[arg-type]
        sub.end_at,
        phases,
        {p.plan_id: _plan_entry(session, p.plan_id, plans_cache) for p in phases},
    )


def _plan_entry(
    session: Session, plan_id: int, plans_cache: PlanCache | None = None, version: int = 0
) -> tuple[str, PlanFields]:
    def load() -> tuple[str, PlanFields]:
        plan = plans.by_id(session, plan_id)
        return plan.key, plans.definition(plan)

    if plans_cache is None:
        return load()
    return plans_cache.get_or_load(("plan", plan_id, version), load)


def _runs_after(moment: datetime) -> ColumnElement[bool]:
    """Subscriptions that still run after ``moment`` (one canceled before it began never
    runs at all)."""
    return Subscription.end_at.is_(None) | (
        (Subscription.end_at > moment) & (Subscription.end_at > Subscription.start_at)
    )


def _open_subscription(session: Session, customer_id: int) -> Subscription | None:
    """The customer's subscription that has not ended (the latest one, if it starts later)."""
    return session.scalar(
        select(Subscription)
        .where(Subscription.customer_id == customer_id, _runs_after(utc_now()))
        .order_by(Subscription.start_at)
        .limit(1)
    )


# -- life cycle ----------------------------------------------------------------------------


def to_read(session: Session, sub: Subscription, now: datetime | None = None) -> SubscriptionRead:
    now = now or utc_now()
    terms = terms_of(session, sub)
    customer = session.get(Customer, sub.customer_id)
    assert customer is not None  # a foreign key
    if sub.end_at is not None and (now >= sub.end_at or sub.end_at <= sub.start_at):
        status = "canceled"
    elif now < sub.start_at:
        status = "scheduled"
    else:
        status = "active"
    current = None
    moment = max(now, sub.start_at)
    found = terms.period_at(moment, ZoneInfo(customer.timezone))
    if status != "canceled" and found is not None:
        current = Period(start=found[0], end=found[1])
    phase = next((p for p in reversed(sub.phases) if p.start_at <= moment), sub.phases[0])
    return SubscriptionRead(
        id=sub.id,
        customer=customer.external_id,
        plan=terms.plans[phase.plan_id][0],
        status=status,
        billing_anchor=sub.billing_anchor,
        start_at=sub.start_at,
        end_at=sub.end_at,
        canceled_at=sub.canceled_at,
        current_period=current,
        phases=[
            PhaseRead(plan=terms.plans[p.plan_id][0], start_at=p.start_at, end_at=p.end_at)
            for p in sub.phases
        ],
        created_at=sub.created_at,
    )


def _status_is(status: str, now: datetime) -> ColumnElement[bool]:
    """The statuses ``to_read`` gives, as SQL."""
    never_ran = Subscription.end_at <= Subscription.start_at
    ended = Subscription.end_at.is_not(None) & ((Subscription.end_at <= now) | never_ran)
    if status == "canceled":
        return ended
    if status == "scheduled":
        return ~ended & (Subscription.start_at > now)
    return ~ended & (Subscription.start_at <= now)


def list_page(
    session: Session,
    workspace_id: int,
    *,
    customer: str | None,
    status: str | None,
    limit: int,
    after: str | None,
) -> Page[SubscriptionRead]:
    """Newest first; ``customer`` (an external id) and ``status`` narrow it."""
    now = utc_now()
    query = select(Subscription).where(Subscription.workspace_id == workspace_id)
    if customer is not None:
        query = query.where(
            Subscription.customer_id == customers.id_for_filter(session, workspace_id, customer)
        )
    if status is not None:
        query = query.where(_status_is(status, now))
    page = newest_page(session, query, Subscription.id, limit, after)
    return Page([to_read(session, sub, now) for sub in page.items], page.next_cursor)


def create(session: Session, workspace_id: int, data: SubscriptionCreate) -> Subscription:
    customer = customers.find(session, workspace_id, data.customer)
    if customer is None:
        raise invalid("customer", "unknown_customer", f"No customer {data.customer!r}.")
    if customer.parent_id is not None:
        raise invalid(
            "customer",
            "customer_is_member",
            f"{data.customer!r} is a member of an organization: it is on its organization's "
            "subscription.",
        )
    plan = _plan(session, workspace_id, data.plan)
    customers.lock(session, customer.id)
    start = data.start_at or utc_now()
    clash = session.scalar(
        select(Subscription.id).where(Subscription.customer_id == customer.id, _runs_after(start))
    )
    if clash is not None:
        raise SubscriptionExists(
            f"{data.customer!r} already has subscription {clash!r}; change or cancel it."
        )
    now = utc_now()
    sub = Subscription(
        id=new_id("sub"),
        workspace_id=workspace_id,
        customer_id=customer.id,
        billing_anchor=data.billing_anchor,
        start_at=start,
        created_at=now,
        updated_at=now,
        phases=[SubscriptionPhase(plan_id=plan.id, start_at=start, end_at=None, anchor_at=start)],
    )
    session.add(sub)
    session.flush()
    workspace_terms.bump(session, workspace_id)
    due = _first_cycle(session, sub, plans.definition(plan), ZoneInfo(customer.timezone), now)
    _cycle(session, sub, "subscription.created", due)
    return sub


def _first_cycle(
    session: Session, sub: Subscription, plan: PlanFields, zone: ZoneInfo, now: datetime
) -> datetime:
    """When a new subscription's billing cycle first has work: at its start when the plan
    allocates credits (granted then), at once when a period has ended already (a start
    in the past), else when its first period ends. Not at once for every subscription:
    a thousand made in a minute would be a thousand jobs with nothing to do, each
    taking the write lock from decisions."""
    if plan.credits is not None and plan.credits.amount > 0:
        return max(sub.start_at, now)
    found = terms_of(session, sub).bounds_at(sub.start_at, zone)
    if found is None or found.end <= now:
        return now
    return found.end


def _cycle(session: Session, sub: Subscription, kind: str, due: datetime | None = None) -> None:
    """Have the billing cycle look at the subscription (in this transaction) — now, or
    at ``due``: it closes what has ended and is due again at the next period end.
    Announce ``kind``."""
    now = utc_now()

    def data() -> dict[str, Any]:  # read only when an endpoint wants the event
        read = to_read(session, sub, now)
        return {
            "subscription": sub.id,
            "plan": read.plan,
            "status": read.status,
            "start_at": sub.start_at.isoformat(),
            "end_at": None if sub.end_at is None else sub.end_at.isoformat(),
            "phases": [{"plan": p.plan, "start_at": p.start_at.isoformat()} for p in read.phases],
        }

    webhooks.emit(session, sub.workspace_id, kind, sub.customer_id, data, now)
    jobs.schedule(
        session,
        CYCLE,
        f"cycle:{sub.id}",
        now if due is None else due,
        workspace_id=sub.workspace_id,
        payload={"subscription": sub.id},
    )


def _plan(session: Session, workspace_id: int, key: str) -> Plan:
    plan = plans.find(session, workspace_id, key)
    if plan is None:
        raise invalid("plan", "unknown_plan", f"No plan {key!r}.")
    return plan


def get(session: Session, workspace_id: int, subscription_id: str) -> Subscription:
    return get_owned(session, Subscription, subscription_id, workspace_id, "subscription")


def _moment(session: Session, sub: Subscription, at: str) -> datetime:
    """When a change or cancellation asked for ``at`` takes effect."""
    now = utc_now()
    if sub.end_at is not None and sub.end_at <= now:
        raise SubscriptionEnded(f"Subscription {sub.id!r} ended at {sub.end_at.isoformat()}.")
    moment = max(now, sub.start_at)
    if at == "period_end":
        customer = session.get(Customer, sub.customer_id)
        assert customer is not None
        period = terms_of(session, sub).period_at(moment, ZoneInfo(customer.timezone))
        assert period is not None  # moment lies within the subscription
        moment = period[1]
    return moment


def _cut(sub: Subscription, moment: datetime) -> SubscriptionPhase | None:
    """End the phases at ``moment``: later ones go; returns the phase that held it."""
    held = None
    for phase in list(sub.phases):
        if phase.start_at >= moment:
            sub.phases.remove(phase)
        elif phase.end_at is None or phase.end_at > moment:
            phase.end_at = moment
            held = phase
    return held


def change(
    session: Session, workspace_id: int, subscription_id: str, data: SubscriptionChange
) -> Subscription:
    sub = get(session, workspace_id, subscription_id)
    plan = _plan(session, workspace_id, data.plan)
    moment = _moment(session, sub, data.at)
    if sub.end_at is not None and moment >= sub.end_at:
        raise SubscriptionEnded(f"Subscription {sub.id!r} ends before the change would apply.")
    first = sub.phases[0]
    before = _cut(sub, moment) or first  # a scheduled subscription's first phase is replaced
    old = plans.definition(plans.by_id(session, before.plan_id))
    new = plans.definition(plan)
    if old.currency != new.currency:  # raised inside the transaction: the cut rolls back
        raise invalid(
            "plan",
            "currency_mismatch",
            f"{data.plan!r} bills in {new.currency}, the subscription in {old.currency}: "
            "cancel it and subscribe anew.",
        )
    same_interval = old.interval == new.interval
    anchor = before.anchor_at if same_interval else moment
    sub.phases.append(
        SubscriptionPhase(plan_id=plan.id, start_at=moment, end_at=sub.end_at, anchor_at=anchor)
    )
    sub.updated_at = utc_now()
    session.flush()
    workspace_terms.bump(session, workspace_id)
    _cycle(session, sub, "subscription.changed")
    return sub


def cancel(
    session: Session, workspace_id: int, subscription_id: str, data: SubscriptionCancel
) -> Subscription:
    sub = get(session, workspace_id, subscription_id)
    moment = _moment(session, sub, data.at)
    if sub.end_at is not None and sub.end_at <= moment:
        return sub  # already ends by then
    if moment <= sub.start_at:  # canceled before it began: it never runs
        moment = sub.start_at
        del sub.phases[1:]
        sub.phases[0].end_at = moment
    else:
        _cut(sub, moment)
    sub.end_at = moment
    sub.canceled_at = utc_now()
    sub.updated_at = sub.canceled_at
    session.flush()
    workspace_terms.bump(session, workspace_id)
    _cycle(session, sub, "subscription.canceled")
    return sub
