from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from meterline.api.deps import DB, V1
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require
from meterline.auth.scopes import Scope
from meterline.errors import invalid
from meterline.plans import service as plans
from meterline.runtime import runtime_of
from meterline.workspaces import service
from meterline.workspaces.models import Workspace
from meterline.workspaces.schemas import WorkspaceRead, WorkspaceUpdate

router = APIRouter(prefix=f"{V1}/workspace", tags=["Workspace"], route_class=MeterlineRoute)
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]


def _read(session: Session, row: Workspace) -> WorkspaceRead:
    read = WorkspaceRead.model_validate(row, from_attributes=True)
    if row.default_plan_id is not None:
        read.default_plan = plans.by_id(session, row.default_plan_id).key
    return read


@router.get("", response_model=WorkspaceRead)
def get_workspace(auth: Admin, db: DB) -> WorkspaceRead:
    """The caller's workspace and its settings."""
    with db.read() as session:
        return _read(session, service.get(session, auth.workspace_id))


@router.patch("", response_model=WorkspaceRead)
def update_workspace(body: WorkspaceUpdate, auth: Admin, db: DB, request: Request) -> WorkspaceRead:
    """Change the workspace's name or settings (only the fields sent). Ingestion on
    other processes picks up new settings within METERLINE_CACHE_SECONDS."""
    with db.write() as session:
        plan_id = None
        if body.default_plan is not None:
            plan = plans.find(session, auth.workspace_id, body.default_plan)
            if plan is None:
                raise invalid("default_plan", "unknown_plan", f"No plan {body.default_plan!r}.")
            plan_id = plan.id
        updated = _read(session, service.update(session, auth.workspace_id, body, plan_id))
    runtime_of(request).policy_cache.clear()
    return updated
