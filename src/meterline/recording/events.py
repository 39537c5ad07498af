"""Reading recorded events: listings with, for each event, why a meter got nothing
from it (``problems``) — no meter of its type, a filter that leaves it out, a missing
or unusable value — so nothing is silently zero."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from meterline.customers import service as customers
from meterline.ingestion import store
from meterline.ingestion.models import Event
from meterline.ingestion.schemas import EventRead, MeterProblem
from meterline.kit.decimals import display_decimal
from meterline.kit.pagination import Page, cursor_key, make_page
from meterline.meters import rollups
from meterline.meters.aggregation import MeterSpec, ValueProblem, contribute, excluded_by


def problems(specs: Sequence[MeterSpec], event: Event) -> list[MeterProblem]:
    """Why meters of this event's type get nothing from it — no meter of its type, a
    filter that leaves it out, a missing or unusable value — so nothing is silently zero."""
    if not specs:
        return [
            MeterProblem(
                meter=None,
                code="unmetered",
                message=f"no meter counts events of type {event.event_type!r}",
            )
        ]
    found = []
    for spec in specs:
        try:
            counted = contribute(spec, event.quantity, event.properties)
        except ValueProblem as problem:
            found.append(MeterProblem(meter=spec.key, code=problem.code, message=problem.message))
            continue
        if counted is None:
            reason = excluded_by(spec, event.properties) or "its filter excludes it"
            found.append(MeterProblem(meter=spec.key, code="filtered_out", message=reason))
    return found


def list_page(
    session: Session,
    workspace_id: int,
    *,
    limit: int,
    after: str | None,
    customer: str | None = None,
    event_type: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Page[EventRead]:
    """Events, newest first, with what went wrong for each of its meters."""
    scope = None
    if customer is not None:
        found = customers.find(session, workspace_id, customer)
        if found is None:
            return Page([], None)
        scope = store.Scope(*customers.scope_of(found))
    query = store.filtered(workspace_id, scope, start, end)
    if event_type is not None:
        query = query.where(Event.event_type == event_type)
    if (last := cursor_key(after, int)) is not None:
        query = query.where(Event.seq < last)
    rows = list(session.scalars(query.order_by(Event.seq.desc()).limit(limit + 1)))
    page = make_page(rows, limit, key=lambda event: event.seq)
    specs = rollups.specs_by_type(session, workspace_id, {e.event_type for e in page.items})
    names = customers.external_ids(
        session, {e.customer_id for e in page.items} | {e.billing_customer_id for e in page.items}
    )
    return Page([to_read(e, names, specs) for e in page.items], page.next_cursor)


def to_read(event: Event, names: dict[int, str], specs: dict[str, list[MeterSpec]]) -> EventRead:
    """An event as answered; ``names`` maps its customers' ids to external ids."""
    return EventRead(
        id=event.event_id,
        type=event.event_type,
        customer=names[event.customer_id],
        billed_to=names[event.billing_customer_id],
        subject=event.subject,
        timestamp=event.timestamp,
        received_at=event.received_at,
        quantity=display_decimal(event.quantity),
        properties=event.properties,
        problems=[] if event.voided_at else problems(specs.get(event.event_type, []), event),
        voided_at=event.voided_at,
        void_reason=event.void_reason,
    )


def read_one(session: Session, event: Event) -> EventRead:
    specs = rollups.specs_by_type(session, event.workspace_id, {event.event_type})
    names = customers.external_ids(session, {event.customer_id, event.billing_customer_id})
    return to_read(event, names, specs)
