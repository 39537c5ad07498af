"""A new workspace with its first admin key, and the first workspace of an empty
database (``meterline serve`` bootstraps one)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from meterline.auth import service as auth_service
from meterline.auth.scopes import Scope
from meterline.errors import AlreadyExists
from meterline.workspaces import service as workspaces
from meterline.workspaces.models import Workspace

DEFAULT_WORKSPACE = "default"


@dataclass(frozen=True)
class NewWorkspace:
    workspace: Workspace
    admin_key: str


def create_workspace(session: Session, name: str, *, admin_key: str | None = None) -> NewWorkspace:
    """A workspace and its first admin key (``admin_key`` imposes a known secret)."""
    workspace = workspaces.create(session, name)
    _, secret = auth_service.create_key(
        session, workspace.id, name="admin", scopes=[Scope.ADMIN], secret=admin_key
    )
    return NewWorkspace(workspace, secret)


def bootstrap(
    session: Session, *, name: str = DEFAULT_WORKSPACE, admin_key: str | None = None
) -> NewWorkspace | None:
    """On an empty database, the first workspace and admin key; otherwise nothing.

    Safe when several processes start at once: the unique workspace name lets one win.
    """
    if not workspaces.is_empty(session):
        return None
    try:
        return create_workspace(session, name, admin_key=admin_key)
    except AlreadyExists:
        return None
