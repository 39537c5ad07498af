"""Usage alerts (the ``alerts.evaluate`` job): for each limit of the customer's plan,
each share in its ``alert_at`` that the window's usage has reached raises
``usage.threshold_reached`` (a share below 1) or ``usage.limit_reached`` (1 and above),
once per threshold, window and customer: the alert's key names all four, so evaluating
again (as usage keeps rising, or twice) raises nothing new, and the next window starts
afresh. Stateless: what counts is the usage now, not by how much it moved."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from meterline.alerts.service import EVALUATE, raise_alert
from meterline.customers import service as customers
from meterline.entitlements import service as entitlements
from meterline.jobs.service import Claimed
from meterline.kit.decimals import CONTEXT, format_decimal


def evaluate(
    session: Session, job: Claimed, now: datetime, scratch: dict[Any, Any]
) -> datetime | None:
    customer_id = job.payload["customer"]
    workspace_id = job.workspace_id
    assert workspace_id is not None  # written by ``alerts.service.watch``
    names = customers.external_ids(session, {customer_id})
    if customer_id not in names:
        return None
    standing = entitlements.standing(session, workspace_id, names[customer_id])
    plan = None if standing is None else standing.terms.plan_at(now)
    if standing is None or plan is None:
        return None
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
                threshold = CONTEXT.multiply(share, read.max)
                if read.used < threshold:
                    continue
                kind = "usage.limit_reached" if share >= 1 else "usage.threshold_reached"
                raise_alert(
                    session,
                    workspace_id,
                    standing.billing_id,
                    kind,
                    now,
                    threshold=share,
                    feature=key,
                    window=state.limit.window,
                    window_start=state.start,
                    dedupe_key=f"{kind}:{standing.billing_id}:{key}:{state.limit.window}:"
                    f"{state.start.isoformat()}:{format_decimal(share)}",
                    data={
                        "feature": key,
                        "window": state.limit.window,
                        "window_start": state.start.isoformat(),
                        "resets_at": state.end.isoformat(),
                        "enforcement": state.limit.enforcement,
                        "max": format_decimal(read.max),
                        "used": format_decimal(read.used),
                        "share": format_decimal(share),
                        "threshold": format_decimal(threshold),
                    },
                )
    return None


__all__ = ["EVALUATE", "evaluate"]
