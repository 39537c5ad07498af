"""``Idempotency-Key`` for money-moving POSTs (SPEC §5): a repeat returns the first
response and changes nothing.

The key is claimed by an insert in the same transaction as the change it guards, and
the response is stored with it: either both commit or neither does. A concurrent
request with the same key waits on the claim (PostgreSQL's unique index; SQLite has one
writer) and then answers from what the first stored. Only successful responses are
kept: a failure changes nothing, so retrying it with the same key tries again. The same
key sent with another request (path or body) is refused with 422
``idempotency_key_reused``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from meterline.db import Base, Database
from meterline.errors import MeterlineError, invalid
from meterline.kit import rawsql
from meterline.kit.time import utc_now

MAX_KEY = 255


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    workspace_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(MAX_KEY), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None]
    response: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


@dataclass(frozen=True)
class Stored:
    status: int
    body: dict[str, Any]


def fingerprint(method: str, path: str, body: str) -> str:
    return hashlib.sha256(f"{method} {path}\n{body}".encode()).hexdigest()


def claim(session: Session, workspace_id: int, key: str, print_: str) -> Stored | None:
    """Claim ``key`` for this request in the caller's write transaction; the stored
    response when a request with the key was done before (then do nothing)."""
    if not key or len(key) > MAX_KEY:
        raise invalid(
            "Idempotency-Key", "invalid_idempotency_key", f"1 to {MAX_KEY} characters, please."
        )
    d = rawsql.driver(session)
    claimed = rawsql.run(
        session,
        "INSERT INTO idempotency_keys (workspace_id, key, fingerprint, created_at) "
        f"VALUES ({d.mark}, {d.mark}, {d.mark}, {d.mark}) "
        "ON CONFLICT (workspace_id, key) DO NOTHING RETURNING key",
        (workspace_id, key, print_, d.timestamp(utc_now())),
    )
    if claimed:
        return None
    found = session.get(IdempotencyKey, (workspace_id, key))
    assert found is not None  # it conflicted: it is there
    if found.status is None or found.response is None:  # pragma: no cover - same transaction
        raise MeterlineError("idempotency key without a response")
    if found.fingerprint != print_:
        raise invalid(
            "Idempotency-Key",
            "idempotency_key_reused",
            "This Idempotency-Key was used for another request.",
        )
    return Stored(found.status, found.response)


def store(session: Session, workspace_id: int, key: str, status: int, body: Any) -> None:
    """Keep the response of the request that claimed ``key``."""
    found = session.get(IdempotencyKey, (workspace_id, key))
    if found is None:  # pragma: no cover - claimed in this transaction
        raise MeterlineError("idempotency key lost")
    found.status = status
    found.response = body
    session.flush()


KeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY,
        description="A repeat with the same key returns the first response and changes nothing.",
    ),
]


def once(
    db: Database,
    request: Request,
    workspace_id: int,
    key: str | None,
    body: BaseModel | None,
    code: int,
    act: Callable[[Session], BaseModel],
) -> JSONResponse:
    """Run ``act`` in a write transaction, at most once per Idempotency-Key."""
    with db.write() as session:
        if key is not None:
            print_ = fingerprint(
                "POST", request.url.path, "" if body is None else body.model_dump_json()
            )
            stored = claim(session, workspace_id, key, print_)
            if stored is not None:
                return JSONResponse(stored.body, status_code=stored.status)
        answer = act(session).model_dump(mode="json")
        if key is not None:
            store(session, workspace_id, key, code, answer)
    return JSONResponse(answer, status_code=code)
