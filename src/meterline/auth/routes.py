from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from meterline.api.deps import DB, DEFAULT_LIMIT, V1, After, Limit
from meterline.api.routing import MeterlineRoute
from meterline.auth import customer_tokens, service
from meterline.auth.context import AuthContext
from meterline.auth.deps import require
from meterline.auth.models import ApiKey
from meterline.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRead,
    ApiKeyUpdate,
    TokenCreate,
    TokenCreated,
)
from meterline.auth.scopes import Scope
from meterline.kit.time import utc_now
from meterline.runtime import runtime_of

router = APIRouter(prefix=f"{V1}/api-keys", tags=["API keys"], route_class=MeterlineRoute)
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]


def _read(row: ApiKey) -> ApiKeyRead:
    return ApiKeyRead(
        id=row.id,
        name=row.name,
        scopes=[Scope(s) for s in row.scopes],
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        rate_limit=service.rate_limit_of(row),
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
def create_api_key(body: ApiKeyCreate, auth: Admin, db: DB) -> ApiKeyCreated:
    """Create a key. Its secret is in this response only; store it now. `rate_limit`:
    its own request rate (`{"per_second": null}`: unlimited), in place of the
    server-wide default."""
    with db.write() as session:
        row, secret = service.create_key(
            session,
            auth.workspace_id,
            name=body.name,
            scopes=body.scopes,
            rate_limit=body.rate_limit,
        )
        return ApiKeyCreated(**_read(row).model_dump(), key=secret)


@router.get("", response_model=ApiKeyList)
def list_api_keys(
    auth: Admin, db: DB, limit: Limit = DEFAULT_LIMIT, after: After = None
) -> ApiKeyList:
    """The workspace's live keys (never their secrets)."""
    with db.read() as session:
        page = service.list_keys(session, auth.workspace_id, limit=limit, after=after)
        return ApiKeyList(data=[_read(r) for r in page.items], next_cursor=page.next_cursor)


@router.patch("/{key_id}", response_model=ApiKeyRead)
def update_api_key(
    key_id: str, body: ApiKeyUpdate, auth: Admin, db: DB, request: Request
) -> ApiKeyRead:
    """Rename a key or change its `rate_limit` (only the fields sent; `rate_limit: null`
    puts it back on the server-wide default). A new rate applies at once on this
    process; on other processes of a scaled-out deployment within
    METERLINE_CACHE_SECONDS."""
    with db.write() as session:
        updated = _read(service.update_key(session, auth.workspace_id, key_id, body))
    runtime_of(request).key_cache.clear()
    return updated


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_api_key(key_id: str, auth: Admin, db: DB, request: Request) -> Response:
    """Revoke a key: at once on this process; on other processes of a scaled-out
    deployment within METERLINE_CACHE_SECONDS."""
    with db.write() as session:
        service.revoke_key(session, auth.workspace_id, key_id)
    runtime_of(request).key_cache.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


tokens_router = APIRouter(
    prefix=f"{V1}/customers", tags=["Customer tokens"], route_class=MeterlineRoute
)


@tokens_router.post(
    "/{external_id}/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated
)
def create_customer_token(
    external_id: str, auth: Admin, db: DB, body: TokenCreate | None = None
) -> TokenCreated:
    """A short-lived token for one customer (default 1 hour, at most 24), for a browser:
    it may read that customer's usage, entitlements and credits and call `/v1/check`
    for it — nothing else (403 `insufficient_scope`); expired or altered, 401."""
    ttl = (body or TokenCreate()).ttl_seconds
    with db.write() as session:
        return customer_tokens.issue(session, auth.workspace_id, external_id, ttl, utc_now())
