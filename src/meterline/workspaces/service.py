"""Workspaces: their settings, policies and secrets. A new workspace with its first admin
key, and an empty database's first workspace: ``auth.onboarding``."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.db import insert_unique
from meterline.errors import AlreadyExists, NotFound, invalid
from meterline.workspaces import terms
from meterline.workspaces.models import Workspace
from meterline.workspaces.schemas import WorkspaceUpdate


def _clean_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise invalid("name", "invalid_name", "A workspace name has 1 to 100 characters.")
    return name


def create(session: Session, name: str) -> Workspace:
    """A new workspace (its first admin key: ``auth.onboarding.create_workspace``)."""
    name = _clean_name(name)
    workspace = Workspace(name=name)
    insert_unique(session, workspace, AlreadyExists(f"A workspace named {name!r} exists."))
    return workspace


def is_empty(session: Session) -> bool:
    return session.scalar(select(Workspace.id).limit(1)) is None


NULLABLE = {"event_retention_days"}


def get(session: Session, workspace_id: int) -> Workspace:
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound("No such workspace.")
    return workspace


def update(
    session: Session, workspace_id: int, patch: WorkspaceUpdate, default_plan_id: int | None = None
) -> Workspace:
    """Change the fields sent; ``default_plan`` arrives resolved as ``default_plan_id``."""
    workspace = get(session, workspace_id)
    for field in patch.model_fields_set:
        if field == "default_plan":
            workspace.default_plan_id = default_plan_id
            continue
        value = getattr(patch, field)
        if value is None and field not in NULLABLE:
            raise invalid(field, "null_not_allowed", f"{field} cannot be null.")
        if field == "name":
            value = _clean_name(value)
        setattr(workspace, field, value)
    retention = workspace.event_retention_days
    if retention is not None and retention < workspace.event_lateness_days:
        raise invalid(
            "event_retention_days",
            "retention_below_lateness",
            f"Raw events are kept at least as long as late events are accepted "
            f"({workspace.event_lateness_days} days).",
        )
    insert_unique(
        session, workspace, AlreadyExists(f"A workspace named {workspace.name!r} exists.")
    )
    terms.bump(session, workspace_id)
    return workspace


def list_workspaces(session: Session) -> list[Workspace]:
    return list(session.scalars(select(Workspace).order_by(Workspace.id)))


def find_workspace(session: Session, name_or_id: str | None) -> Workspace:
    """By name or numeric id; with none given, the only workspace there is."""
    if name_or_id is None:
        rows = list(session.scalars(select(Workspace).order_by(Workspace.id).limit(2)))
        if len(rows) == 1:
            return rows[0]
        raise NotFound("Name the workspace (--workspace): there is not exactly one.")
    query = select(Workspace).where(Workspace.name == name_or_id)
    found = session.scalar(query)
    if found is None and name_or_id.isdigit():
        found = session.get(Workspace, int(name_or_id))
    if found is None:
        raise NotFound(f"No workspace {name_or_id!r}.")
    return found


def retention(session: Session) -> list[tuple[int, int]]:
    """(workspace id, days) of every workspace that deletes old raw events."""
    rows = session.execute(
        select(Workspace.id, Workspace.event_retention_days).where(
            Workspace.event_retention_days.is_not(None)
        )
    )
    return [(workspace_id, days) for workspace_id, days in rows if days is not None]


def token_secret(session: Session, workspace_id: int, *, create: bool) -> str | None:
    """The workspace's customer-token secret (made now when ``create`` and missing)."""
    workspace = get(session, workspace_id)
    if workspace.token_secret is None and create:
        workspace.token_secret = secrets.token_urlsafe(32)
        session.flush()
    return workspace.token_secret
