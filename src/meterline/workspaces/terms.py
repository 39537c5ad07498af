"""A workspace's terms version: bumped in the same transaction as any change to what
its customers are entitled to (plans, subscriptions, customers, meters, the default
plan). Processes cache customers' standings and check this one number before using
one, so a change made through any process is seen by every other at once."""

from __future__ import annotations

from sqlalchemy.orm import Session

from meterline.kit import rawsql


def bump(session: Session, workspace_id: int) -> None:
    d = rawsql.driver(session)
    rawsql.run(
        session,
        f"UPDATE workspaces SET terms_version = terms_version + 1 WHERE id = {d.mark}",
        (workspace_id,),
    )


def version(session: Session, workspace_id: int) -> int:
    d = rawsql.driver(session)
    rows = rawsql.run(
        session, f"SELECT terms_version FROM workspaces WHERE id = {d.mark}", (workspace_id,)
    )
    return int(rows[0][0]) if rows else 0
