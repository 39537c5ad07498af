"""Checks, reservations, entitlements and limit resets over HTTP.

Decisions fail closed: when the database cannot answer (an error, a lock or busy
timeout) the answer is 503 ``decision_unavailable`` with ``allowed: false``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from meterline.api.deps import DB, V1, standings
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require, require_or_customer
from meterline.auth.scopes import Scope as KeyScope
from meterline.config import Settings
from meterline.db import Database
from meterline.entitlements import reservations, service
from meterline.entitlements.models import Reservation
from meterline.entitlements.schemas import (
    CheckRequest,
    CheckResponse,
    EntitlementsRead,
    LimitReset,
    ReservationCreate,
    ReservationRead,
    ReservationSettle,
)
from meterline.kit.cache import TTLCache
from meterline.kit.groupcommit import GroupWriter, Unit
from meterline.kit.time import utc_now
from meterline.runtime import Runtime, runtime_of

log = logging.getLogger("meterline")
JSON = "application/json"
router = APIRouter(prefix=V1, tags=["Limits"], route_class=MeterlineRoute)
Ingester = Annotated[AuthContext, Depends(require(KeyScope.INGEST))]
Reader = Annotated[AuthContext, Depends(require(KeyScope.READ))]
Admin = Annotated[AuthContext, Depends(require(KeyScope.ADMIN))]
ReaderOrCustomer = Annotated[AuthContext, Depends(require_or_customer(KeyScope.READ))]
IngesterOrCustomer = Annotated[AuthContext, Depends(require_or_customer(KeyScope.INGEST))]
Standings = Annotated[TTLCache[tuple[int, str], service.Standing | None], Depends(standings)]


def decision_writer(db: Database, settings: Settings) -> GroupWriter:
    """Where every decision (check, hold, settle, release) of this process runs: one
    writer thread that commits concurrent decisions together (``kit.groupcommit``),
    each answered after its commit. A database failure becomes a denial (fail closed)."""

    @contextmanager
    def transaction() -> Iterator[Session]:
        with db.write() as session:
            if not db.is_sqlite:
                timeout = int(settings.decision_timeout_ms)
                session.connection().exec_driver_sql(f"SET LOCAL statement_timeout = {timeout}")
            yield session

    return GroupWriter(
        transaction,
        name="decision",
        translate=_fail_closed,
        unavailable=_unavailable,
        threads=1 if db.is_sqlite else POSTGRES_WRITERS,
    )


# PostgreSQL runs transactions side by side: this many decision groups at once per
# process (SQLite has one writer at a time, so one thread).
POSTGRES_WRITERS = 4
# What a database that cannot answer now raises (a lock or statement timeout, a
# connection lost, the pool exhausted): the decision is denied, not retried.
_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InternalError, sa_exc.TimeoutError)


def _unavailable(exc: BaseException) -> bool:
    """A database failure, not a deadlock or serialization failure (SQLSTATE class 40:
    the group's units are run again, alone)."""
    state = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    return isinstance(exc, _UNAVAILABLE) and not state.startswith("40")


def _fail_closed(exc: BaseException) -> BaseException:
    if isinstance(exc, _UNAVAILABLE):
        log.warning("decision failed closed: %s", exc)
        found = service.DecisionUnavailable(
            f"The database could not decide ({type(exc.__cause__ or exc).__name__}); denied."
        )
        found.__cause__ = exc
        return found
    return exc


@router.post("/check", response_model=CheckResponse)
def check(body: CheckRequest, auth: IngesterOrCustomer, request: Request) -> Response:
    """May the customer use `quantity` more of `feature` now? With `consume: true` the
    usage is recorded in the same step when allowed (an ordinary event, idempotent by
    `id`); a denial records nothing. A customer token may check for its customer."""
    auth.limit_to(body.customer)
    return Response(decide(runtime_of(request), auth.workspace_id, body), media_type=JSON)


def decide(state: Runtime, workspace_id: int, body: CheckRequest) -> bytes:
    """A check's JSON answer (blocking: waits for the decision's commit)."""
    return state.decisions.submit(check_unit(state, workspace_id, body), body.customer)


def check_unit(state: Runtime, workspace_id: int, body: CheckRequest) -> Unit[bytes]:
    """The check as a unit of the decision writer, answering its JSON (serialised once
    here: FastAPI would validate the model again). Shared by the route and by
    ``CheckFastPath``, which awaits it without a thread of its own."""

    def unit(session: Session) -> bytes:
        now = utc_now()
        found = service.cached_standing(state.standing_cache, session, workspace_id, body.customer)
        decision = service.check(session, workspace_id, body, found, now)
        return service.to_response(body, decision).model_dump_json().encode()

    return unit


@router.post("/reservations", response_model=ReservationRead)
def create_reservation(
    body: ReservationCreate, auth: Ingester, db: DB, request: Request, cache: Standings
) -> ReservationRead:
    """Hold allowance for work whose size is known later; it counts against limits
    until settled, released, or its TTL passes. A denial holds nothing (`id` null)."""

    def unit(session: Session) -> ReservationRead:
        now = utc_now()
        found = service.cached_standing(cache, session, auth.workspace_id, body.customer)
        held = reservations.hold(session, auth.workspace_id, body, found, now)
        if held.reservation is None:
            return reservations.denied(body, held.decision)
        return reservations.to_read(session, held.reservation, now, held.decision)

    return runtime_of(request).decisions.submit(unit, body.customer)


@router.get("/reservations/{reservation_id}", response_model=ReservationRead)
def get_reservation(reservation_id: str, auth: Reader, db: DB) -> ReservationRead:
    with db.read() as session:
        found = reservations.get(session, auth.workspace_id, reservation_id)
        return reservations.to_read(session, found, utc_now())


@router.post("/reservations/{reservation_id}/settle", response_model=ReservationRead)
def settle_reservation(
    reservation_id: str, body: ReservationSettle, auth: Ingester, request: Request
) -> ReservationRead:
    """Record the usage that really happened (more or less than held) and free the
    hold. 409 `reservation_closed` when it was settled or released already."""
    return _close(
        request, lambda s, now: reservations.settle(s, auth.workspace_id, reservation_id, body, now)
    )


@router.post("/reservations/{reservation_id}/release", response_model=ReservationRead)
def release_reservation(reservation_id: str, auth: Ingester, request: Request) -> ReservationRead:
    """Free the hold without recording usage."""
    return _close(
        request, lambda s, now: reservations.release(s, auth.workspace_id, reservation_id, now)
    )


def _close(request: Request, action: Callable[[Session, datetime], Reservation]) -> ReservationRead:
    def unit(session: Session) -> ReservationRead:
        now = utc_now()
        closed = action(session, now)
        return reservations.to_read(session, closed, now)

    return runtime_of(request).decisions.submit(unit)


@router.get("/customers/{external_id}/entitlements", response_model=EntitlementsRead)
def get_entitlements(
    external_id: str, auth: ReaderOrCustomer, db: DB, cache: Standings
) -> EntitlementsRead:
    """Every feature of the customer's plan with its limits: used, held, remaining,
    when each window resets, and whether it is exhausted. (A customer token may read
    its own.)"""
    auth.limit_to(external_id)
    with db.read() as session:
        found = service.cached_standing(cache, session, auth.workspace_id, external_id)
        return service.entitlements(session, auth.workspace_id, found, external_id, utc_now())


@router.post("/customers/{external_id}/limits/reset", response_model=EntitlementsRead)
def reset_limits(
    external_id: str, body: LimitReset, auth: Admin, db: DB, cache: Standings
) -> EntitlementsRead:
    """The current window of the limit(s) counts from now for enforcement; events and
    billing usage are untouched. Answers the customer's entitlements after the reset."""
    with db.write() as session:
        now = utc_now()
        found = service.cached_standing(cache, session, auth.workspace_id, external_id)
        service.reset(session, auth.workspace_id, found, external_id, body, now)
        return service.entitlements(session, auth.workspace_id, found, external_id, now)
