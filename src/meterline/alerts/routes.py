"""``GET /v1/alerts``: alerts raised, so they can be read without webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from meterline.alerts import service
from meterline.alerts.schemas import AlertList
from meterline.api.deps import DB, DEFAULT_LIMIT, V1, After, Limit
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require
from meterline.auth.scopes import Scope
from meterline.customers.schemas import ExternalId
from meterline.kit.fields import ClientTime

router = APIRouter(prefix=f"{V1}/alerts", tags=["Alerts"], route_class=MeterlineRoute)
Reader = Annotated[AuthContext, Depends(require(Scope.READ))]


@router.get("", response_model=AlertList)
def list_alerts(
    auth: Reader,
    db: DB,
    customer: Annotated[ExternalId | None, Query(description="A customer's external id.")] = None,
    type: Annotated[str | None, Query(description="usage.limit_reached, credits.low, …")] = None,
    since: Annotated[ClientTime | None, Query(alias="from")] = None,
    until: Annotated[ClientTime | None, Query(alias="to")] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> AlertList:
    """Alerts raised, newest first: usage thresholds and limits reached (once per
    threshold and window), credits low and depleted."""
    with db.read() as session:
        page = service.list_page(
            session,
            auth.workspace_id,
            customer=customer,
            kind=type,
            since=since,
            until=until,
            limit=limit,
            after=after,
        )
    return AlertList(data=page.items, next_cursor=page.next_cursor)
