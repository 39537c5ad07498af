"""What the operator pages show, assembled from the same service functions the API
routes call (so a number on a page is the number the API returns). Every value handed
to a template is the API's JSON form of it (``model_dump(mode="json")``): decimals and
money as the API spells them.

Reads only; the changes the pages make are in ``actions``. Charts get their numbers as
decimal strings (the browser parses them for drawing).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from meterline.alerts import service as alerts
from meterline.auth import service as auth_service
from meterline.billing_sync import service as stripe_sync
from meterline.credits import service as credits
from meterline.customers import service as customers
from meterline.dashboard.snapshot import Snapshot
from meterline.entitlements import service as entitlements
from meterline.ingestion import stats
from meterline.invoicing import service as invoicing
from meterline.kit.cache import TTLCache
from meterline.kit.decimals import CONTEXT, ZERO, display_decimal
from meterline.kit.periods import windows
from meterline.meters import service as meters
from meterline.meters.usage import usage
from meterline.plans import service as plans
from meterline.pricing import service as pricing
from meterline.recording import events as recorded
from meterline.subscriptions import service as subscriptions
from meterline.webhooks import service as webhooks

RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
PAGE = 25


def dump(model: Any) -> Any:
    """A pydantic model (or a list of them) as the API's JSON values."""
    if isinstance(model, list):
        return [dump(item) for item in model]
    return model.model_dump(mode="json")


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


# -- overview --------------------------------------------------------------------------------------


def events_chart(session: Session, workspace_id: int, span: str, now: datetime) -> dict[str, Any]:
    """Events received per hour over the last 24 hours, 7 or 30 days (every hour, zeros
    included), and the range's totals."""
    start = stats.hour_of(now - RANGES[span]) + timedelta(hours=1)
    hours = {h.hour: h.counts for h in stats.hourly(session, workspace_id, start, now)}
    xs, accepted, rejected, unmetered, duplicates = [], [], [], [], []
    moment = start
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0, "unmetered": 0}
    while moment <= now:
        counts = hours.get(moment) or stats.Counts()
        xs.append(_unix(moment))
        accepted.append(str(counts.accepted))
        rejected.append(str(counts.rejected))
        unmetered.append(str(counts.unmetered))
        duplicates.append(str(counts.duplicates))
        for name in totals:
            totals[name] += getattr(counts, name)
        moment += timedelta(hours=1)
    chart = {
        "kind": "line",
        "x": xs,
        "series": [
            {"label": "accepted", "values": accepted},
            {"label": "rejected", "values": rejected},
            {"label": "unmetered", "values": unmetered},
        ],
    }
    return {"span": span, "chart": chart, "totals": totals}


def revenue_summary(snapshot: Snapshot) -> dict[str, Any]:
    so_far = snapshot.by_currency(lambda f: f.total)
    projected = snapshot.by_currency(lambda f: f.projected)
    last = snapshot.by_currency(lambda f: f.last_period)
    currencies = sorted(set(so_far) | set(last))
    return {
        "as_of": snapshot.as_of,
        "seconds": snapshot.seconds,
        "rows": [
            {
                "currency": c,
                "so_far": format(so_far.get(c, ZERO), "f"),
                "projected": format(projected.get(c, ZERO), "f"),
                "last": format(last.get(c, ZERO), "f"),
            }
            for c in currencies
        ],
        "customers": len(snapshot.customers),
        "active": snapshot.active,
        "top_revenue": snapshot.top_by_revenue(),
        "features": snapshot.features,
    }


def overview(session: Session, workspace_id: int) -> dict[str, Any]:
    recent = alerts.list_page(
        session,
        workspace_id,
        customer=None,
        kind=None,
        since=None,
        until=None,
        limit=10,
        after=None,
    )
    hooks = webhooks.list_page(session, workspace_id, limit=100, after=None).items
    return {
        "stripe": stripe_failures(session, workspace_id),
        "alerts": dump(recent.items),
        "failed_deliveries": dump(webhooks.failures(session, workspace_id, 10)),
        "failing_endpoints": [
            dump(webhooks.to_read(e)) for e in hooks if not e.enabled or e.failing_since
        ],
    }


def stripe_failures(session: Session, workspace_id: int) -> dict[str, Any]:
    """Stripe sync at a glance: reports by status and the newest failed ones (the
    Stripe page has the rest)."""
    failed = stripe_sync.reports(
        session, workspace_id, status="failed", customer=None, limit=5, after=None
    )
    return {
        "connected": stripe_sync.is_connected(session, workspace_id),
        "counts": stripe_sync.report_counts(session, workspace_id),
        "failed": dump(failed.items),
    }


def top_usage(snapshot: Snapshot, feature: str | None) -> dict[str, Any]:
    features = snapshot.features
    chosen = feature if feature in features else (features[0] if features else None)
    rows = snapshot.top_by_usage(chosen) if chosen else []
    return {
        "feature": chosen,
        "features": features,
        "rows": [
            {
                "external_id": f.external_id,
                "name": f.name,
                "used": display_decimal(f.usage[chosen]) if chosen else "",
                "unit": f.units.get(chosen) if chosen else None,
            }
            for f in rows
        ],
    }


# -- customers -------------------------------------------------------------------------------------


def customer_list(
    session: Session,
    workspace_id: int,
    snapshot: Snapshot | None,
    search: str | None,
    after: str | None,
) -> dict[str, Any]:
    page = customers.list_page(session, workspace_id, limit=PAGE, after=after, search=search)
    rows = []
    for read in page.items:
        customer = customers.get(session, workspace_id, read.external_id)
        billing_id = customers.root_of(session, customer)
        figures = snapshot.customers.get(billing_id) if snapshot else None
        rows.append(
            {
                "customer": dump(read),
                "billed_to": None if billing_id == customer.id else figures_name(figures),
                "figures": figures,
                "balance": display_decimal(credits.balance_of(session, billing_id)),
            }
        )
    return {"rows": rows, "next_cursor": page.next_cursor, "search": search or ""}


def figures_name(figures: Any) -> str | None:
    return None if figures is None else figures.external_id


def customer_chart(
    session: Session,
    workspace_id: int,
    external_id: str,
    rights: dict[str, Any],
    feature: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    """The period's usage of one feature per day (in the customer's zone), its running
    total, and the feature's day and month/period limits as lines."""
    if rights["period"] is None or not rights["features"]:
        return None
    names: list[str] = [f["feature"] for f in rights["features"] if f["enabled"]]
    if not names:
        return None
    chosen = feature if feature is not None and feature in names else names[0]
    customer = customers.get(session, workspace_id, external_id)
    meter = meters.get(session, workspace_id, chosen)
    start = datetime.fromisoformat(rights["period"]["start"])
    end = min(datetime.fromisoformat(rights["period"]["end"]), now)
    zone = ZoneInfo(customer.timezone)
    rows = usage(
        session,
        workspace_id,
        meter,
        customer=customer,
        start=start,
        end=end,
        window="day",
        zone=zone,
    )
    by_day = {row.window_start: row.value for row in rows}
    xs, daily, running = [], [], []
    total = ZERO
    for day, _ in windows(start, end, "day", zone):
        value = by_day.get(day, "0")
        total = CONTEXT.add(total, Decimal(value))
        xs.append(_unix(day))
        daily.append(value)
        running.append(display_decimal(total))
    series = [
        {"label": "per day", "values": daily, "bars": True},
        {"label": "period so far", "values": running},
    ]
    entry = next(f for f in rights["features"] if f["feature"] == chosen)
    for limit in entry["limits"]:
        if limit["max"] is not None and limit["window"] in ("day", "month", "period"):
            series.append(
                {
                    "label": f"{limit['window']} limit",
                    "values": [limit["max"]] * len(xs),
                    "limit": True,
                }
            )
    return {
        "feature": chosen,
        "features": names,
        "chart": {"kind": "line", "x": xs, "series": series},
    }


def current_period(
    session: Session,
    workspace_id: int,
    external_id: str,
    now: datetime,
    standing: entitlements.Standing | None = None,
) -> tuple[Any, Any]:
    """``GET …/usage`` and ``GET …/invoices/upcoming`` from one statement (both None
    without a plan)."""
    try:
        standing, found = pricing.current_statement(
            session, workspace_id, external_id, now, standing
        )
    except pricing.NoPlan:
        return None, None
    usage = dump(pricing.usage_of(session, standing, found))
    return usage, dump(invoicing.upcoming_of(standing, found))


def customer_page(
    session: Session,
    workspace_id: int,
    external_id: str,
    standings: TTLCache[Any, Any],
    now: datetime,
    ledger_after: str | None,
    chart_feature: str | None,
) -> dict[str, Any]:
    read = customers.read(session, workspace_id, external_id)
    standing = entitlements.cached_standing(standings, session, workspace_id, external_id)
    rights = dump(entitlements.entitlements(session, workspace_id, standing, external_id, now))
    current, upcoming = current_period(session, workspace_id, external_id, now, standing)
    subscription = None
    if rights["subscription"] is not None:
        sub = subscriptions.get(session, workspace_id, rights["subscription"])
        subscription = dump(subscriptions.to_read(session, sub, now))
    ledger = credits.transactions(
        session, workspace_id, external_id, limit=PAGE, after=ledger_after
    )
    billed = rights["billed_to"]
    invoices = invoicing.list_page(
        session,
        workspace_id,
        customer=billed,
        status=None,
        period_from=None,
        period_to=None,
        limit=12,
        after=None,
    )
    raised = alerts.list_page(
        session,
        workspace_id,
        customer=billed,
        kind=None,
        since=None,
        until=None,
        limit=10,
        after=None,
    )
    events = recorded.list_page(session, workspace_id, limit=20, after=None, customer=external_id)
    return {
        "customer": dump(read),
        "rights": rights,
        "usage": current,
        "upcoming": upcoming,
        "subscription": subscription,
        "credits": dump(credits.read(session, workspace_id, external_id, now)),
        "ledger": dump(ledger.items),
        "ledger_next": ledger.next_cursor,
        "invoices": dump(invoices.items),
        "alerts": dump(raised.items),
        "events": dump(events.items),
        "plans": [
            p.key for p in plans.list_page(session, workspace_id, limit=1000, after=None).items
        ],
        "usage_chart": customer_chart(
            session, workspace_id, external_id, rights, chart_feature, now
        ),
        "limit_windows": sorted(
            {(f["feature"], lim["window"]) for f in rights["features"] for lim in f["limits"]}
        ),
    }


# -- revenue ---------------------------------------------------------------------------------------


def _month(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


def _add(table: dict[str, Any], key: str, amount: str) -> None:
    table[key] = CONTEXT.add(table.get(key, ZERO), Decimal(amount))


def _kind(line: dict[str, Any]) -> str:
    """base fee; usage (a feature with nothing included); overage (beyond what the plan
    includes)."""
    if line["type"] == "base_fee":
        return "base fees"
    return "overage" if line.get("included") not in (None, "0") else "usage"


def revenue(
    session: Session, workspace_id: int, snapshot: Snapshot | None, now: datetime
) -> dict[str, Any]:
    """The last 12 months of invoices (by the month their period starts, UTC) and this
    period's upcoming invoices, by plan, by feature and by kind, per currency."""
    first = (
        now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) - timedelta(days=335)
    ).replace(day=1)
    periods: dict[tuple[str, str], dict[str, Any]] = {}

    def slot(month: str, currency: str) -> dict[str, Any]:
        return periods.setdefault(
            (month, currency),
            {
                "month": month,
                "currency": currency,
                "total": ZERO,
                "invoices": 0,
                "plans": {},
                "features": {},
                "kinds": {},
                "upcoming": False,
            },
        )

    def count(target: dict[str, Any], plan: str, lines: list[dict[str, Any]], total: str) -> None:
        target["invoices"] += 1
        target["total"] = CONTEXT.add(target["total"], Decimal(total))
        for line in lines:
            _add(target["plans"], line.get("plan") or plan, line["amount"])
            _add(target["kinds"], _kind(line), line["amount"])
            if line["type"] == "usage":
                _add(target["features"], line["feature"], line["amount"])

    for invoice in dump(invoicing.starting_since(session, workspace_id, first)):
        start = datetime.fromisoformat(invoice["period"]["start"])
        count(
            slot(_month(start), invoice["currency"]),
            invoice["plan"],
            invoice["lines"],
            invoice["total"],
        )
    if snapshot is not None:
        for figures in snapshot.customers.values():
            if figures.plan is None or figures.currency is None:
                continue
            target = slot("upcoming", figures.currency)
            target["upcoming"] = True
            count(target, figures.plan, dump(figures.lines), format(figures.total, "f"))
    rows = sorted(
        periods.values(), key=lambda p: (p["month"] != "upcoming", p["month"]), reverse=True
    )
    for row in rows:
        row["total"] = format(row["total"], "f")
        for name in ("plans", "features", "kinds"):
            row[name] = {k: format(v, "f") for k, v in sorted(row[name].items())}
    return {"periods": rows, "as_of": snapshot.as_of if snapshot else None}


# -- lists -----------------------------------------------------------------------------------------


def invoice_list(
    session: Session, workspace_id: int, customer: str | None, status: str | None, after: str | None
) -> dict[str, Any]:
    page = invoicing.list_page(
        session,
        workspace_id,
        customer=customer or None,
        status=status or None,
        period_from=None,
        period_to=None,
        limit=PAGE,
        after=after,
    )
    return {"invoices": dump(page.items), "next_cursor": page.next_cursor}


def alert_list(
    session: Session, workspace_id: int, customer: str | None, kind: str | None, after: str | None
) -> dict[str, Any]:
    page = alerts.list_page(
        session,
        workspace_id,
        customer=customer or None,
        kind=kind or None,
        since=None,
        until=None,
        limit=PAGE,
        after=after,
    )
    return {"alerts": dump(page.items), "next_cursor": page.next_cursor}


def webhook_page(session: Session, workspace_id: int) -> dict[str, Any]:
    endpoints = webhooks.list_page(session, workspace_id, limit=1000, after=None).items
    return {
        "endpoints": [dump(webhooks.to_read(e)) for e in endpoints],
        "failed": dump(webhooks.failures(session, workspace_id, 20)),
    }


def endpoint_page(
    session: Session, workspace_id: int, endpoint_id: str, after: str | None
) -> dict[str, Any]:
    endpoint = webhooks.to_read(webhooks.get(session, workspace_id, endpoint_id))
    page = webhooks.deliveries(session, workspace_id, endpoint_id, limit=PAGE, after=after)
    return {
        "endpoint": dump(endpoint),
        "deliveries": dump(page.items),
        "next_cursor": page.next_cursor,
    }


def api_keys(session: Session, workspace_id: int) -> dict[str, Any]:
    page = auth_service.list_keys(session, workspace_id, limit=1000, after=None)
    return {
        "keys": [
            {
                "id": k.id,
                "name": k.name,
                "scopes": k.scopes,
                "prefix": k.prefix,
                "created_at": k.created_at,
                "last_used_at": k.last_used_at,
                "rate_limit": auth_service.rate_limit_of(k),
            }
            for k in page.items
        ]
    }


def portal_page(
    session: Session,
    workspace_id: int,
    external_id: str,
    standings: TTLCache[Any, Any],
    now: datetime,
    after: str | None,
) -> dict[str, Any]:
    """What a customer token shows its customer: usage against limits, credits and
    ledger, the upcoming and past invoices (past ones only to the billed customer
    itself: a member sees that its organization is billed)."""
    read = customers.read(session, workspace_id, external_id)
    standing = entitlements.cached_standing(standings, session, workspace_id, external_id)
    rights = dump(entitlements.entitlements(session, workspace_id, standing, external_id, now))
    current, upcoming = current_period(session, workspace_id, external_id, now, standing)
    ledger = credits.transactions(session, workspace_id, external_id, limit=PAGE, after=after)
    invoices = None
    if read.parent is None:
        page = invoicing.list_page(
            session,
            workspace_id,
            customer=external_id,
            status=None,
            period_from=None,
            period_to=None,
            limit=24,
            after=None,
        )
        invoices = [i for i in dump(page.items) if i["status"] != "draft"]
    return {
        "customer": dump(read),
        "rights": rights,
        "usage": current,
        "upcoming": upcoming if read.parent is None else None,
        "credits": dump(credits.read(session, workspace_id, external_id, now)),
        "ledger": dump(ledger.items),
        "ledger_next": ledger.next_cursor,
        "invoices": invoices,
    }
