"""The events API: record usage (batches, single events, CloudEvents), list events with
their problems, void an event. What happens to an event is ``recording.pipeline``."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from meterline.api.deps import DB, DEFAULT_LIMIT, V1, After, Limit
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require
from meterline.auth.scopes import Scope
from meterline.customers.schemas import ExternalId
from meterline.db import Database
from meterline.errors import MalformedJson, PayloadTooLarge, UnsupportedMediaType, invalid
from meterline.ingestion.schemas import (
    EventBatchIn,
    EventIn,
    EventList,
    EventRead,
    EventVoid,
    IngestResult,
)
from meterline.invoicing import voids
from meterline.kit.fields import ClientTime
from meterline.kit.time import utc_now
from meterline.recording import events as recorded
from meterline.recording import pipeline
from meterline.recording.committer import GroupCommitter
from meterline.runtime import Runtime, runtime_of

router = APIRouter(prefix=f"{V1}/events", tags=["Events"], route_class=MeterlineRoute)
Ingester = Annotated[AuthContext, Depends(require(Scope.INGEST))]
Reader = Annotated[AuthContext, Depends(require(Scope.READ))]
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]

CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENT_BATCH = "application/cloudevents-batch+json"


class TooManyEvents(PayloadTooLarge):
    code = "too_many_events"
    title = "Too many events"


def _events_of(body: bytes, media: str) -> tuple[list[Any], bool]:
    """The raw events in a request body, and whether they are CloudEvents."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"The request body is not valid JSON: {exc}") from exc
    if media == CLOUDEVENT:
        return [payload], True
    if media == CLOUDEVENT_BATCH:
        if not isinstance(payload, list):
            raise invalid("body", "invalid_batch", "A CloudEvents batch is a JSON array.")
        return payload, True
    if isinstance(payload, dict) and "events" in payload:
        if not isinstance(payload["events"], list):
            raise invalid("events", "invalid_batch", "`events` must be a list of events.")
        return payload["events"], False
    if isinstance(payload, list):
        return payload, False
    return [payload], False


def ingest_request(
    db: Database,
    state: Runtime,
    workspace_id: int,
    raws: list[Any],
    cloudevents: bool,
) -> dict[str, Any]:
    def load() -> pipeline.Policy:
        with db.read() as session:
            return pipeline.policy(session, workspace_id)

    committer: GroupCommitter = state.committer
    policy = state.policy_cache.get_or_load(workspace_id, load)
    valid, rejected = pipeline.check(raws, policy, cloudevents=cloudevents)
    outcome = (
        committer.submit(policy, valid, len(rejected)) if valid or rejected else pipeline.Outcome()
    )
    outcome.rejections += rejected
    return outcome.as_dict()


@router.post(
    "",
    response_model=IngestResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    # Both inline: a $ref here would point at a component the document
                    # does not define (generators such as openapi-typescript refuse it).
                    "schema": {
                        "oneOf": [
                            EventIn.model_json_schema(),
                            {
                                "title": EventBatchIn.__name__,
                                "type": "object",
                                "required": ["events"],
                                "properties": {
                                    "events": {
                                        "type": "array",
                                        "maxItems": 10_000,
                                        "items": EventIn.model_json_schema(),
                                    }
                                },
                            },
                        ]
                    }
                },
                CLOUDEVENT: {"schema": {"type": "object"}},
                CLOUDEVENT_BATCH: {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def post_events(request: Request, auth: Ingester, db: DB) -> Response:
    """Record one event, or a batch of up to 10,000 (`{"events": [...]}`).

    Each event is validated on its own; good events are stored even when others are
    refused. Answered only after a durable commit. Re-sending an id with the same content
    counts as a duplicate; with other content it is refused as `conflict`.
    """
    media = (request.headers.get("content-type") or "application/json").split(";")[0].strip()
    if media not in ("application/json", CLOUDEVENT, CLOUDEVENT_BATCH):
        raise UnsupportedMediaType(
            f"Content-Type {media!r} is not accepted: use application/json, {CLOUDEVENT} "
            f"or {CLOUDEVENT_BATCH}."
        )
    raws, cloudevents = _events_of(await request.body(), media)
    if len(raws) > pipeline.MAX_BATCH:
        raise TooManyEvents(f"A request carries at most {pipeline.MAX_BATCH} events.")
    result = await run_in_threadpool(
        ingest_request, db, runtime_of(request), auth.workspace_id, raws, cloudevents
    )
    return Response(orjson.dumps(result), media_type="application/json")


@router.get("", response_model=EventList)
def list_events(
    auth: Reader,
    db: DB,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
    customer: Annotated[
        ExternalId | None, Query(description="external_id; an organization includes its members.")
    ] = None,
    type: Annotated[str | None, Query(description="Event type.")] = None,
    from_: Annotated[
        ClientTime | None, Query(alias="from", description="Timestamp ≥ this.")
    ] = None,
    to: Annotated[ClientTime | None, Query(description="Timestamp < this.")] = None,
) -> EventList:
    """Events, newest first, each with `problems`: why a meter got no value from it."""
    with db.read() as session:
        page = recorded.list_page(
            session,
            auth.workspace_id,
            limit=limit,
            after=after,
            customer=customer,
            event_type=type,
            start=from_,
            end=to,
        )
    return EventList(data=page.items, next_cursor=page.next_cursor)


@router.post("/{event_id:path}/void", response_model=EventRead)
def void_event(
    event_id: str, auth: Admin, db: DB, body: Annotated[EventVoid | None, Body()] = None
) -> EventRead:
    """Stop counting a stored event everywhere it counted — meter usage and rollups,
    limit counters, open-period usage — and reverse its credit debits, in one
    transaction. The event stays listed with `voided_at`. 409 `period_finalized` when
    its period's invoice is finalized; voiding again changes nothing."""
    with db.write() as session:
        return voids.void(
            session, auth.workspace_id, event_id, body.reason if body else None, utc_now()
        )
