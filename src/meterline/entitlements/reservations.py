"""Reservations (SPEC §4): allowance held now, settled with the real size later.

A hold is decided like a consume (under the same guard) and counts against every
limit of the feature while it is ``held`` and its ``expires_at`` is ahead: a hold
lapses at its TTL by that condition alone, whether or not anything runs then.
Settling records the actual usage as an ordinary event whose id is the reservation's,
so a settlement can never count twice. A late settlement (after the TTL) still records
the usage: the work happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from meterline.credits.costs import Strategies
from meterline.customers import service as customers
from meterline.db import Database, get_owned
from meterline.entitlements.models import Reservation
from meterline.entitlements.schemas import ReservationCreate, ReservationRead, ReservationSettle
from meterline.entitlements.service import (
    Decision,
    Standing,
    amount_of,
    asked,
    limit_reads,
    record,
    refusal,
    usage_event,
    weigh,
)
from meterline.errors import Conflict
from meterline.kit.ids import new_id
from meterline.meters import counters, rollups
from meterline.meters import service as meters
from meterline.meters.aggregation import without_value


class ReservationClosed(Conflict):
    code = "reservation_closed"
    title = "Reservation closed"


@dataclass
class Held:
    decision: Decision
    reservation: Reservation | None


def hold(
    session: Session,
    workspace_id: int,
    request: ReservationCreate,
    standing: Standing | None,
    now: datetime,
    strategies: Strategies | None = None,
) -> Held:
    found = asked(standing, request.feature, request.quantity, request.properties, now)
    if isinstance(found, Decision):
        return Held(found, None)
    standing, feature, spec, amount = found
    counters.guard(session, [(spec.id, standing.billing_id)])
    states, purse = weigh(
        session, workspace_id, standing, feature, spec, request, amount, now, True, strategies
    )
    if (refused := refusal(states, purse, amount, spec)) is not None:
        return Held(refused, None)
    reservation = Reservation(
        id=new_id("res"),
        workspace_id=workspace_id,
        customer_id=standing.billing_id,
        subject_customer_id=standing.customer_id,
        meter_id=spec.id,
        quantity=request.quantity,
        amount=amount,
        credits=purse.required if purse.required > 0 else None,
        subject=request.subject,
        properties=request.properties,
        status="held",
        expires_at=now + timedelta(seconds=request.ttl_seconds),
        created_at=now,
    )
    session.add(reservation)
    session.flush()
    for state in states:
        state.held += amount
    return Held(Decision(True, "ok", states, spec, credits=purse.read()), reservation)


OPEN = ("held", "expired")  # an expired hold still settles: the work happened


def expire_due(db: Database, now: datetime) -> int:
    """Mark holds past their TTL ``expired`` (the background job): they stopped counting
    at their TTL already; this keeps the live-hold index to live holds."""
    with db.write() as session:
        result = session.execute(
            update(Reservation)
            .where(Reservation.status == "held", Reservation.expires_at <= now)
            .values(status="expired")
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


def get(session: Session, workspace_id: int, reservation_id: str) -> Reservation:
    return get_owned(session, Reservation, reservation_id, workspace_id, "reservation")


def _open(session: Session, workspace_id: int, reservation_id: str) -> Reservation:
    """The reservation, locked for its settlement or release; 409 once closed."""
    reservation = get(session, workspace_id, reservation_id)
    counters.guard(session, [(reservation.meter_id, reservation.customer_id)])
    session.refresh(reservation)  # as of the guard: a concurrent close is seen
    if reservation.status not in OPEN:
        raise ReservationClosed(f"Reservation {reservation_id!r} is already {reservation.status}.")
    return reservation


def settle(
    session: Session,
    workspace_id: int,
    reservation_id: str,
    data: ReservationSettle,
    now: datetime,
    strategies: Strategies | None = None,
) -> Reservation:
    """Record the real usage (its credits charged as it lands: never below zero, the
    rest reported as uncovered) and close the hold, freeing what it held."""
    reservation = _open(session, workspace_id, reservation_id)
    meter = meters.by_id(session, reservation.meter_id)
    spec = rollups.spec_of(meter)
    # The settled quantity is the usage, unless the settlement's properties say it.
    properties = {**without_value(spec, reservation.properties), **data.properties}
    if data.quantity > 0:
        amount_of(spec, data.quantity, properties)  # 422 before anything is written
        customer = customers.external_ids(session, {reservation.subject_customer_id})
        event = usage_event(
            spec,
            customer[reservation.subject_customer_id],
            reservation.id,
            data.quantity,
            reservation.subject,
            properties,
            now,
        )
        record(session, workspace_id, event, strategies=strategies, reference_type="reservation")
        reservation.event_id = event.event_id
    reservation.status = "settled"
    reservation.settled_quantity = data.quantity
    reservation.closed_at = now
    session.flush()
    return reservation


def release(session: Session, workspace_id: int, reservation_id: str, now: datetime) -> Reservation:
    reservation = _open(session, workspace_id, reservation_id)
    reservation.status = "released"
    reservation.closed_at = now
    session.flush()
    return reservation


def to_read(
    session: Session,
    reservation: Reservation,
    now: datetime,
    decision: Decision | None = None,
) -> ReservationRead:
    status = reservation.status
    if status == "held" and reservation.expires_at <= now:
        status = "expired"
    meter = meters.by_id(session, reservation.meter_id)
    names = customers.external_ids(session, {reservation.subject_customer_id})
    return ReservationRead(
        id=reservation.id,
        allowed=True,
        reason="ok",
        customer=names[reservation.subject_customer_id],
        feature=meter.key,
        quantity=reservation.quantity,
        status=status,
        expires_at=reservation.expires_at,
        settled_quantity=reservation.settled_quantity,
        event_id=reservation.event_id,
        limits=limit_reads(decision) if decision is not None else [],
        credits=decision.credits if decision is not None else None,
    )


def denied(request: ReservationCreate, decision: Decision) -> ReservationRead:
    return ReservationRead(
        id=None,
        allowed=False,
        reason=decision.reason,
        customer=request.customer,
        feature=request.feature,
        quantity=request.quantity,
        status=None,
        expires_at=None,
        limits=limit_reads(decision),
        credits=decision.credits,
    )
