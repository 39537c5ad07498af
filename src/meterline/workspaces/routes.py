from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from meterline.api.deps import DB, V1
from meterline.api.routing import MeterlineRoute
from meterline.auth.context import AuthContext
from meterline.auth.deps import require
from meterline.auth.scopes import Scope
from meterline.workspaces import service
from meterline.workspaces.models import Workspace
from meterline.workspaces.schemas import WorkspaceRead, WorkspaceUpdate

router = APIRouter(prefix=f"{V1}/workspace", tags=["Workspace"], route_class=MeterlineRoute)
Admin = Annotated[AuthContext, Depends(require(Scope.ADMIN))]


def _read(row: Workspace) -> WorkspaceRead:
    return WorkspaceRead.model_validate(row, from_attributes=True)


@router.get("", response_model=WorkspaceRead)
def get_workspace(auth: Admin, db: DB) -> WorkspaceRead:
    """The caller's workspace and its settings."""
    with db.read() as session:
        return _read(service.get(session, auth.workspace_id))


@router.patch("", response_model=WorkspaceRead)
def update_workspace(body: WorkspaceUpdate, auth: Admin, db: DB, request: Request) -> WorkspaceRead:
    """Change the workspace's name or settings (only the fields sent). Ingestion on
    other processes picks up new settings within METERLINE_CACHE_SECONDS."""
    with db.write() as session:
        updated = _read(service.update(session, auth.workspace_id, body))
    request.app.state.policy_cache.clear()
    return updated
