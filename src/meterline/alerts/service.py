"""Alerts: recorded where they happen (once: a unique ``dedupe_key`` per threshold and
window), each sent as a webhook in the same transaction, read back with ``GET
/v1/alerts``. Usage thresholds are evaluated by a job that ingestion schedules for every
customer whose limited usage it changed (``watch``; ``entitlements.alerting``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.alerts.models import Alert
from meterline.alerts.schemas import AlertRead
from meterline.customers import service as customers
from meterline.db import dialect_insert, newest_page
from meterline.jobs import service as jobs
from meterline.kit.decimals import CONTEXT, display_decimal
from meterline.kit.ids import new_id
from meterline.kit.pagination import Page
from meterline.webhooks import service as webhooks

EVALUATE = "alerts.evaluate"
# Usage alerts are evaluated this long after the usage that may raise them, at most once
# per customer in that time (background work under load stays small).
EVALUATION_DELAY = timedelta(seconds=2)


def raise_alert(
    session: Session,
    workspace_id: int,
    customer_id: int,
    kind: str,
    *,
    now: datetime,
    threshold: Decimal | None = None,
    feature: str | None = None,
    window: str | None = None,
    window_start: datetime | None = None,
    dedupe_key: str | None = None,
    data: dict[str, Any] | None = None,
) -> str | None:
    """Record the alert and queue its webhook; with a ``dedupe_key`` already recorded,
    nothing happens (returns None). Returns the alert's id."""
    alert_id = new_id("alr")
    table = Alert.__table__
    inserted = session.execute(
        dialect_insert(session, table)  # type: ignore[arg-type]
        .values(
            id=alert_id,
            workspace_id=workspace_id,
            customer_id=customer_id,
            type=kind,
            threshold=threshold,
            feature=feature,
            window=window,
            window_start=window_start,
            dedupe_key=dedupe_key,
            data=data or {},
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[table.c.workspace_id, table.c.dedupe_key])
        .returning(table.c.id)
    ).first()
    if inserted is None:
        return None
    webhooks.emit(session, workspace_id, kind, customer_id, data or {}, now)
    return alert_id


def usage_alert(
    customer_id: int,
    feature: str,
    window: str,
    start: datetime,
    end: datetime,
    enforcement: str,
    maximum: Decimal,
    used: Decimal,
    share: Decimal,
) -> dict[str, Any]:
    """``raise_alert``'s arguments for a limit's share reached: ``usage.threshold_reached``
    below 1, ``usage.limit_reached`` from 1, keyed once per threshold, window and
    customer."""
    kind = "usage.limit_reached" if share >= 1 else "usage.threshold_reached"
    threshold = CONTEXT.multiply(share, maximum)
    return {
        "customer_id": customer_id,
        "kind": kind,
        "threshold": share,
        "feature": feature,
        "window": window,
        "window_start": start,
        "dedupe_key": f"{kind}:{customer_id}:{feature}:{window}:{start.isoformat()}:"
        f"{display_decimal(share)}",
        "data": {
            "feature": feature,
            "window": window,
            "window_start": start.isoformat(),
            "resets_at": end.isoformat(),
            "enforcement": enforcement,
            "max": display_decimal(maximum),
            "used": display_decimal(used),
            "share": display_decimal(share),
            "threshold": display_decimal(threshold),
        },
    }


def watch(session: Session, workspace_id: int, customer_ids: Iterable[int], now: datetime) -> None:
    """Have the customers' usage alerts evaluated within ``EVALUATION_DELAY`` (a job
    each, written in this transaction). A job already due by then is left alone (no
    write), so a customer's busy second costs one evaluation, not one per event; a job
    running now is moved to the new time, so usage that lands while it runs is seen."""
    jobs.schedule_many(
        session,
        EVALUATE,
        {f"alerts:{c}": {"customer": c} for c in sorted(set(customer_ids))},
        now + EVALUATION_DELAY,
        workspace_id=workspace_id,
        existing="sooner",
    )


def to_read(alert: Alert, customer: str) -> AlertRead:
    return AlertRead(
        id=alert.id,
        customer=customer,
        type=alert.type,
        feature=alert.feature,
        window=alert.window,
        window_start=alert.window_start,
        threshold=alert.threshold,
        data=alert.data,
        created_at=alert.created_at,
    )


def list_page(
    session: Session,
    workspace_id: int,
    *,
    customer: str | None,
    kind: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    after: str | None,
) -> Page[AlertRead]:
    """Newest first."""
    query = select(Alert).where(Alert.workspace_id == workspace_id)
    if customer is not None:
        query = query.where(
            Alert.customer_id == customers.id_for_filter(session, workspace_id, customer)
        )
    if kind is not None:
        query = query.where(Alert.type == kind)
    if since is not None:
        query = query.where(Alert.created_at >= since)
    if until is not None:
        query = query.where(Alert.created_at < until)
    page = newest_page(session, query, Alert.id, limit, after)
    names = customers.external_ids(session, {row.customer_id for row in page.items})
    return Page([to_read(row, names[row.customer_id]) for row in page.items], page.next_cursor)


def of_customer(session: Session, workspace_id: int, customer_id: int) -> list[Alert]:
    """A customer's alerts, oldest first."""
    return list(
        session.scalars(
            select(Alert)
            .where(Alert.workspace_id == workspace_id, Alert.customer_id == customer_id)
            .order_by(Alert.id)
        )
    )
