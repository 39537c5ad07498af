"""A workspace's terms version: bumped in the same transaction as any change to what
its customers are entitled to (plans, subscriptions, customers, meters, the default
plan). Processes cache customers' standings and check this one number before using
one, so a change made through any process is seen by every other at once.

A transaction reads the number once: the decisions committed together in one
transaction (``kit.groupcommit``) were all asked before it began, so a change committed
meanwhile is one they may all precede. After a bump in the transaction it reads it
every time."""

from __future__ import annotations

from sqlalchemy.orm import Session

from meterline.kit import rawsql


def bump(session: Session, workspace_id: int) -> None:
    # Read afresh from now on: a savepoint rolled back could undo this bump.
    rawsql.transaction_state(session)[_key(workspace_id)] = _CHANGED
    d = rawsql.driver(session)
    rawsql.run(
        session,
        f"UPDATE workspaces SET terms_version = terms_version + 1 WHERE id = {d.mark}",
        (workspace_id,),
    )


def version(session: Session, workspace_id: int) -> int:
    state = rawsql.transaction_state(session)
    found: int | None = state.get(_key(workspace_id))
    if found is not None and found != _CHANGED:
        return found
    d = rawsql.driver(session)
    rows = rawsql.run(
        session, f"SELECT terms_version FROM workspaces WHERE id = {d.mark}", (workspace_id,)
    )
    read = int(rows[0][0]) if rows else 0
    if found is None:
        state[_key(workspace_id)] = read
    return read


_CHANGED = -1  # bumped in this transaction: never kept


def _key(workspace_id: int) -> str:
    return f"terms_version:{workspace_id}"
