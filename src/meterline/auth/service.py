"""API keys: create (the secret returned once), list, revoke, authenticate."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from meterline.auth.context import AuthContext
from meterline.auth.models import ApiKey
from meterline.auth.scopes import Scope
from meterline.db import insert_unique
from meterline.errors import AlreadyExists, InvalidApiKey, NotFound
from meterline.kit import keys
from meterline.kit.ids import new_id
from meterline.kit.pagination import Page, cursor_key, make_page
from meterline.kit.time import utc_now


def create_key(
    session: Session,
    workspace_id: int,
    *,
    name: str,
    scopes: Iterable[Scope],
    secret: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret; ``secret`` imposes a known value (bootstrap)."""
    secret = secret or keys.generate_key()
    row = ApiKey(
        id=new_id("key"),
        workspace_id=workspace_id,
        name=name,
        scopes=[s.value for s in scopes],
        key_hash=keys.hash_key(secret),
        prefix=keys.visible_prefix(secret),
    )
    insert_unique(session, row, AlreadyExists("That key is already in use."))
    return row, secret


def list_keys(
    session: Session, workspace_id: int, *, limit: int, after: str | None
) -> Page[ApiKey]:
    query = (
        select(ApiKey)
        .where(ApiKey.workspace_id == workspace_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.id)
        .limit(limit + 1)
    )
    if (last := cursor_key(after, str)) is not None:
        query = query.where(ApiKey.id > last)
    return make_page(list(session.scalars(query)), limit, key=lambda row: row.id)


def revoke_key(session: Session, workspace_id: int, key_id: str) -> None:
    revoked = session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            ApiKey.workspace_id == workspace_id,
            ApiKey.revoked_at.is_(None),
        )
        .values(revoked_at=utc_now())
    )
    if revoked.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"No API key {key_id!r}.")


def authenticate(session: Session, secret: str) -> tuple[AuthContext, datetime | None]:
    """The caller behind a secret, and when the key was last used; 401 otherwise."""
    if not keys.is_well_formed_key(secret):
        raise InvalidApiKey()
    row = session.execute(
        select(ApiKey.id, ApiKey.workspace_id, ApiKey.scopes, ApiKey.last_used_at).where(
            ApiKey.key_hash == keys.hash_key(secret), ApiKey.revoked_at.is_(None)
        )
    ).one_or_none()
    if row is None:
        raise InvalidApiKey()
    scopes = frozenset(Scope(s) for s in row.scopes)
    return AuthContext(row.workspace_id, row.id, scopes), row.last_used_at


def is_touch_due(last_used_at: datetime | None, now: datetime, every_seconds: int) -> bool:
    return last_used_at is None or now - last_used_at >= timedelta(seconds=every_seconds)


def touch(session: Session, key_id: str, now: datetime) -> None:
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))


def key_scopes(session: Session, workspace_id: int, key_id: str) -> frozenset[Scope] | None:
    """The scopes of a live key of the workspace; None when it is revoked or unknown
    (a dashboard session names its key and ends with it)."""
    scopes = session.scalar(
        select(ApiKey.scopes).where(
            ApiKey.id == key_id, ApiKey.workspace_id == workspace_id, ApiKey.revoked_at.is_(None)
        )
    )
    return None if scopes is None else frozenset(Scope(s) for s in scopes)
