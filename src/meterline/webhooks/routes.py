"""Webhook endpoints, their delivery logs, and retries over HTTP (admin keys)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from meterline.api.deps import DB, DEFAULT_LIMIT, V1, After, Limit, get_settings
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require
from meterline.auth.scopes import Scope
from meterline.config import Settings
from meterline.kit.time import utc_now
from meterline.webhooks import service
from meterline.webhooks.schemas import (
    DeliveryList,
    DeliveryRead,
    EndpointCreate,
    EndpointList,
    EndpointRead,
    EndpointUpdate,
)

router = APIRouter(prefix=V1, tags=["Webhooks"], route_class=MeterlineRoute)
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]
Config = Annotated[Settings, Depends(get_settings)]
ENDPOINTS = "/webhook-endpoints"


@router.post(ENDPOINTS, status_code=status.HTTP_201_CREATED, response_model=EndpointRead)
def create_endpoint(body: EndpointCreate, auth: Admin, db: DB, settings: Config) -> EndpointRead:
    """Send these event types (none named: all) to `url`, signed with the `whsec_`
    secret in this answer (shown only here and on rotation). URLs resolving to
    loopback, private or link-local addresses: 422 `webhook_url_not_allowed`."""
    with db.write() as session:
        return service.create(
            session, auth.workspace_id, body, settings.webhooks_allow_private, utc_now()
        )


@router.get(ENDPOINTS, response_model=EndpointList)
def list_endpoints(
    auth: Admin, db: DB, limit: Limit = DEFAULT_LIMIT, after: After = None
) -> EndpointList:
    with db.read() as session:
        page = service.list_page(session, auth.workspace_id, limit=limit, after=after)
        return EndpointList(
            data=[service.to_read(e) for e in page.items], next_cursor=page.next_cursor
        )


@router.get(ENDPOINTS + "/{endpoint_id}", response_model=EndpointRead)
def get_endpoint(endpoint_id: str, auth: Admin, db: DB) -> EndpointRead:
    """An endpoint; `enabled: false` with `disabled_reason` when Meterline disabled it
    after days of failed deliveries."""
    with db.read() as session:
        return service.to_read(service.get(session, auth.workspace_id, endpoint_id))


@router.patch(ENDPOINTS + "/{endpoint_id}", response_model=EndpointRead)
def update_endpoint(
    endpoint_id: str, body: EndpointUpdate, auth: Admin, db: DB, settings: Config
) -> EndpointRead:
    """Change the URL, event types or description; `enabled: true` re-enables it."""
    with db.write() as session:
        return service.update(
            session, auth.workspace_id, endpoint_id, body, settings.webhooks_allow_private
        )


@router.delete(ENDPOINTS + "/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_endpoint(endpoint_id: str, auth: Admin, db: DB) -> Response:
    with db.write() as session:
        service.delete(session, auth.workspace_id, endpoint_id, utc_now())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(ENDPOINTS + "/{endpoint_id}/rotate-secret", response_model=EndpointRead)
def rotate_secret(endpoint_id: str, auth: Admin, db: DB) -> EndpointRead:
    """A new signing secret (in this answer only). For 24 hours messages carry a
    signature by the old secret too, so receivers can switch without losing any."""
    with db.write() as session:
        return service.rotate(session, auth.workspace_id, endpoint_id, utc_now())


@router.get(ENDPOINTS + "/{endpoint_id}/deliveries", response_model=DeliveryList)
def list_deliveries(
    endpoint_id: str, auth: Admin, db: DB, limit: Limit = DEFAULT_LIMIT, after: After = None
) -> DeliveryList:
    """Deliveries to the endpoint, newest first, each with every attempt (time, status
    code, latency, error)."""
    with db.read() as session:
        page = service.deliveries(session, auth.workspace_id, endpoint_id, limit=limit, after=after)
    return DeliveryList(data=page.items, next_cursor=page.next_cursor)


@router.post("/webhook-deliveries/{delivery_id}/retry", response_model=DeliveryRead)
def retry_delivery(delivery_id: str, auth: Admin, db: DB) -> DeliveryRead:
    """Send the delivery again now (pending again, whatever its status)."""
    with db.write() as session:
        return service.retry(session, auth.workspace_id, delivery_id, utc_now())
