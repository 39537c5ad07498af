"""Usage alerts (the ``alerts.evaluate`` job): for each limit of the customer's plan,
each share in its ``alert_at`` that the window's usage has reached raises
``usage.threshold_reached`` (a share below 1) or ``usage.limit_reached`` (1 and above),
once per threshold, window and customer: the alert's key names all four, so evaluating
again (as usage keeps rising, or twice) raises nothing new, and the next window starts
afresh. Stateless: what counts is the usage now, not by how much it moved. An I/O job:
it reads without holding SQLite's write lock, and writes only alerts not yet raised."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.alerts.models import Alert
from meterline.alerts.service import EVALUATE, raise_alert, usage_alert
from meterline.customers import service as customers
from meterline.db import Database
from meterline.entitlements import service as entitlements
from meterline.jobs.service import Claimed
from meterline.kit.cache import TTLCache
from meterline.kit.decimals import CONTEXT

# Customers' standings (plans parsed, meters) for this process's evaluations, used only
# while the workspace's terms version is the one they were read at.
_STANDINGS: TTLCache[Any, Any] = TTLCache(entitlements.STANDING_SECONDS)


def evaluate(db: Database, job: Claimed, now: datetime) -> datetime | None:
    """Read the customer's usage (no write lock held while reading), then record only
    the alerts not yet raised, in a short write transaction of their own."""
    customer_id = job.payload["customer"]
    workspace_id = job.workspace_id
    assert workspace_id is not None  # written by ``alerts.service.watch``
    with db.read() as session:
        due = _reached(session, workspace_id, customer_id, now)
        if due:
            raised = set(
                session.scalars(
                    select(Alert.dedupe_key).where(
                        Alert.workspace_id == workspace_id,
                        Alert.dedupe_key.in_([alert["dedupe_key"] for alert in due]),
                    )
                )
            )
            due = [alert for alert in due if alert["dedupe_key"] not in raised]
    if due:
        with db.write() as session:
            for alert in due:
                raise_alert(session, workspace_id, now=now, **alert)
    return None


def _reached(
    session: Session, workspace_id: int, customer_id: int, now: datetime
) -> list[dict[str, Any]]:
    """Every usage alert the customer's usage has reached now (raised before or not)."""
    names = customers.external_ids(session, {customer_id})
    if customer_id not in names:
        return []
    standing = entitlements.cached_standing(_STANDINGS, session, workspace_id, names[customer_id])
    plan = None if standing is None else standing.terms.plan_at(now)
    if standing is None or plan is None:
        return []
    found = []
    for key, feature in plan[1].features.items():
        spec = standing.specs.get(key)
        if spec is None or not feature.enabled or not feature.limits:
            continue
        states = entitlements.limit_states(
            session, workspace_id, standing, spec, feature, now, write=False
        )
        for state in states:
            read = entitlements.limit_read(state, spec)
            if read.max is None:
                continue
            for share in state.limit.alert_at:
                if read.used >= CONTEXT.multiply(share, read.max):
                    found.append(
                        usage_alert(
                            standing.billing_id,
                            key,
                            state.limit.window,
                            state.start,
                            state.end,
                            state.limit.enforcement,
                            read.max,
                            read.used,
                            share,
                        )
                    )
    return found


__all__ = ["EVALUATE", "evaluate"]
