from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from meterline.api.deps import DB, V1
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require
from meterline.auth.scopes import Scope
from meterline.ingestion.schemas import EventRead, EventVoid
from meterline.kit.time import utc_now
from meterline.recording import service

router = APIRouter(prefix=f"{V1}/events", tags=["Events"], route_class=MeterlineRoute)
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]


@router.post("/{event_id:path}/void", response_model=EventRead)
def void_event(
    event_id: str, auth: Admin, db: DB, body: Annotated[EventVoid | None, Body()] = None
) -> EventRead:
    """Stop counting a stored event everywhere it counted — meter usage and rollups,
    limit counters, open-period usage — and reverse its credit debits, in one
    transaction. The event stays listed with `voided_at`. 409 `period_finalized` when
    its period's invoice is finalized; voiding again changes nothing."""
    with db.write() as session:
        return service.void(
            session, auth.workspace_id, event_id, body.reason if body else None, utc_now()
        )
