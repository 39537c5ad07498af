"""Alerts: recorded where they happen, read back in order (delivery: webhooks issue)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.alerts.models import Alert
from meterline.kit.ids import new_id


def raise_alert(
    session: Session,
    workspace_id: int,
    customer_id: int,
    kind: str,
    now: datetime,
    *,
    threshold: Decimal | None = None,
    window_start: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> Alert:
    alert = Alert(
        id=new_id("alr"),
        workspace_id=workspace_id,
        customer_id=customer_id,
        type=kind,
        threshold=threshold,
        window_start=window_start,
        data=data or {},
        created_at=now,
    )
    session.add(alert)
    return alert


def of_customer(session: Session, workspace_id: int, customer_id: int) -> list[Alert]:
    """A customer's alerts, oldest first."""
    return list(
        session.scalars(
            select(Alert)
            .where(Alert.workspace_id == workspace_id, Alert.customer_id == customer_id)
            .order_by(Alert.id)
        )
    )
