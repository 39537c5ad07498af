from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Response, status

from meterline.api.deps import DB, DEFAULT_LIMIT, V1, After, Limit
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require, require_or_customer
from meterline.auth.scopes import Scope
from meterline.customers import service as customers
from meterline.customers.schemas import ExternalId
from meterline.errors import invalid
from meterline.kit.fields import ClientTime
from meterline.kit.periods import Window
from meterline.kit.time import is_valid_timezone, utc_now
from meterline.meters import service
from meterline.meters.schemas import MeterCreate, MeterList, MeterRead, MeterUpdate, UsageResponse
from meterline.meters.usage import usage

router = APIRouter(prefix=f"{V1}/meters", tags=["Meters"], route_class=MeterlineRoute)
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]
Reader = Annotated[AuthContext, Depends(require(Scope.READ))]
# Meter definitions are readable with an ingest key too: a backend that only sends usage
# learns which event type (and value property) a feature's meter counts.
DefinitionReader = Annotated[AuthContext, Depends(require(Scope.READ, Scope.INGEST))]
ReaderOrCustomer = Annotated[AuthContext, Depends(require_or_customer(Scope.READ))]
MAX_WINDOWS = 50_000
# The shortest each window can be (a DST day is 23 hours, February 28 days): a range
# longer than MAX_WINDOWS of these surely holds too many windows to answer.
WINDOW_SPAN = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(hours=23),
    "month": timedelta(days=28),
}
WINDOW_LIMITS = {
    "minute": "about 34 days",
    "hour": "about 5.7 years",
    "day": "about 131 years",
    "month": "about 3,800 years",
}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MeterRead)
def create_meter(body: MeterCreate, auth: Admin, db: DB) -> MeterRead:
    """Define a meter. Events of its type already stored are counted at once."""
    with db.write() as session:
        return service.to_read(service.create(session, auth.workspace_id, body))


@router.get("", response_model=MeterList)
def list_meters(
    auth: DefinitionReader, db: DB, limit: Limit = DEFAULT_LIMIT, after: After = None
) -> MeterList:
    with db.read() as session:
        page = service.list_page(session, auth.workspace_id, limit=limit, after=after)
        return MeterList(
            data=[service.to_read(m) for m in page.items], next_cursor=page.next_cursor
        )


@router.get("/{key}", response_model=MeterRead)
def get_meter(key: str, auth: DefinitionReader, db: DB) -> MeterRead:
    with db.read() as session:
        return service.to_read(service.get(session, auth.workspace_id, key))


@router.patch("/{key}", response_model=MeterRead)
def update_meter(key: str, body: MeterUpdate, auth: Admin, db: DB) -> MeterRead:
    """Change a meter. 409 `meter_has_events` for changes that would rewrite past numbers."""
    with db.write() as session:
        return service.to_read(service.update(session, auth.workspace_id, key, body))


@router.delete("/{key}", status_code=status.HTTP_204_NO_CONTENT)
def delete_meter(key: str, auth: Admin, db: DB) -> Response:
    """Delete a meter and its rollups; events stay."""
    with db.write() as session:
        service.delete(session, auth.workspace_id, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{key}/usage", response_model=UsageResponse)
def meter_usage(
    key: str,
    auth: ReaderOrCustomer,
    db: DB,
    customer: Annotated[
        ExternalId | None, Query(description="external_id; default: every customer.")
    ] = None,
    from_: Annotated[
        ClientTime | None,
        Query(alias="from", description="Start, inclusive; default: 30 days before `to`."),
    ] = None,
    to: Annotated[ClientTime | None, Query(description="End, exclusive; default: now.")] = None,
    window: Annotated[
        Window | None, Query(description="minute, hour, day or month; none: one total.")
    ] = None,
    timezone: Annotated[
        str | None,
        Query(description="IANA zone for window boundaries; default: the customer's, else UTC."),
    ] = None,
    group_by: Annotated[
        list[str] | None,
        Query(description="Declared group_by properties; repeat or comma-separate."),
    ] = None,
) -> UsageResponse:
    """The meter's value per window (non-empty windows only), values as decimal strings.
    A customer token reads its own customer's (``customer`` is then required)."""
    if auth.customer is not None:
        auth.limit_to(customer or "")
    end = to or utc_now()
    start = from_ or end - timedelta(days=30)
    if start >= end:
        raise invalid("from", "invalid_range", "`from` must be before `to`.")
    wanted = tuple(p for item in group_by or [] for p in item.split(",") if p)
    if timezone is not None and not is_valid_timezone(timezone):
        raise invalid("timezone", "invalid_timezone", f"{timezone} is not an IANA time zone.")
    if window is not None and end - start > WINDOW_SPAN[window] * MAX_WINDOWS:
        raise invalid(
            "window",
            "too_many_windows",
            f"At most {MAX_WINDOWS} {window} windows per query "
            f"({WINDOW_LIMITS[window]}): narrow `from`/`to` or use a longer window.",
        )
    with db.read() as session:
        meter = service.get(session, auth.workspace_id, key)
        unknown = [p for p in wanted if p not in meter.group_by]
        if unknown:
            raise invalid(
                "group_by",
                "unknown_group_by",
                f"{', '.join(unknown)} is not among the meter's group_by {meter.group_by}.",
            )
        who = customers.get(session, auth.workspace_id, customer) if customer else None
        zone = ZoneInfo(timezone or (who.timezone if who else "UTC"))
        data = usage(
            session,
            auth.workspace_id,
            meter,
            customer=who,
            start=start,
            end=end,
            window=window,
            zone=zone,
            group_by=wanted,
        )
        return UsageResponse(
            meter=meter.key, aggregation=meter.aggregation, unit=meter.unit, data=data
        )
