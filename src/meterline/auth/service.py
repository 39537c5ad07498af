"""API keys: create (the secret returned once), list, change, revoke, authenticate."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from meterline.auth.context import AuthContext
from meterline.auth.models import ApiKey
from meterline.auth.schemas import ApiKeyUpdate, KeyRateLimit
from meterline.auth.scopes import Scope
from meterline.db import insert_unique
from meterline.errors import AlreadyExists, InvalidApiKey, NotFound, invalid
from meterline.kit import keys
from meterline.kit.ids import new_id
from meterline.kit.pagination import Page, cursor_key, make_page
from meterline.kit.time import utc_now
from meterline.ratelimits.gcra import Rate


def create_key(
    session: Session,
    workspace_id: int,
    *,
    name: str,
    scopes: Iterable[Scope],
    secret: str | None = None,
    rate_limit: KeyRateLimit | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret; ``secret`` imposes a known value (bootstrap);
    ``rate_limit``: its own request rate (None: the server-wide default)."""
    secret = secret or keys.generate_key()
    row = ApiKey(
        id=new_id("key"),
        workspace_id=workspace_id,
        name=name,
        scopes=[s.value for s in scopes],
        key_hash=keys.hash_key(secret),
        prefix=keys.visible_prefix(secret),
    )
    set_rate_limit(row, rate_limit)
    insert_unique(session, row, AlreadyExists("That key is already in use."))
    return row, secret


def set_rate_limit(row: ApiKey, rate_limit: KeyRateLimit | None) -> None:
    """The key's own rate (its burst stored resolved), unlimited, or none (default)."""
    per_second = None if rate_limit is None else rate_limit.per_second
    row.rate_limit_unlimited = rate_limit is not None and per_second is None
    row.rate_limit_per_second = per_second
    row.rate_limit_burst = None
    if rate_limit is not None and per_second is not None:
        row.rate_limit_burst = Rate.of(per_second, rate_limit.burst).burst


def rate_limit_of(row: ApiKey) -> KeyRateLimit | None:
    """The key's ``rate_limit`` as the API shows it."""
    if row.rate_limit_unlimited:
        return KeyRateLimit(per_second=None)
    if row.rate_limit_per_second is None:
        return None
    return KeyRateLimit(per_second=row.rate_limit_per_second, burst=row.rate_limit_burst)


def key_rate(
    per_second: Decimal | None, burst: int | None, unlimited: bool, default: Rate | None
) -> Rate | None:
    """The rate a key's requests are held to: its own, else ``default`` (None: none)."""
    if unlimited:
        return None
    if per_second is not None:
        return Rate.of(per_second, burst)
    return default


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


def update_key(session: Session, workspace_id: int, key_id: str, patch: ApiKeyUpdate) -> ApiKey:
    """Change the fields sent (a live key of the workspace; 404 otherwise)."""
    row = session.scalar(
        select(ApiKey).where(
            ApiKey.id == key_id, ApiKey.workspace_id == workspace_id, ApiKey.revoked_at.is_(None)
        )
    )
    if row is None:
        raise NotFound(f"No API key {key_id!r}.")
    sent = patch.model_fields_set
    if "name" in sent:
        if patch.name is None:
            raise invalid("name", "null_not_allowed", "name cannot be null.")
        row.name = patch.name
    if "rate_limit" in sent:
        set_rate_limit(row, patch.rate_limit)
    session.flush()
    return row


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


def authenticate(
    session: Session, secret: str, *, default_rate: Rate | None
) -> tuple[AuthContext, datetime | None]:
    """The caller behind a secret, and when the key was last used; 401 otherwise.
    ``default_rate``: the rate of keys without their own (None: off)."""
    if not keys.is_well_formed_key(secret):
        raise InvalidApiKey()
    row = session.execute(
        select(
            ApiKey.id,
            ApiKey.workspace_id,
            ApiKey.scopes,
            ApiKey.last_used_at,
            ApiKey.rate_limit_per_second,
            ApiKey.rate_limit_burst,
            ApiKey.rate_limit_unlimited,
        ).where(ApiKey.key_hash == keys.hash_key(secret), ApiKey.revoked_at.is_(None))
    ).one_or_none()
    if row is None:
        raise InvalidApiKey()
    scopes = frozenset(Scope(s) for s in row.scopes)
    rate = key_rate(
        row.rate_limit_per_second, row.rate_limit_burst, row.rate_limit_unlimited, default_rate
    )
    return AuthContext(row.workspace_id, row.id, scopes, rate=rate), row.last_used_at


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
