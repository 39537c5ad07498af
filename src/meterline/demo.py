"""Demo data for `meterline serve --demo`: a workspace whose every page has content.

Each domain adds its part here: meters, a ten-feature catalog priced in four credit
tiers, customers (an organization with members), subscriptions and credits, and two
months of usage.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy.orm import Session

from meterline.auth import onboarding
from meterline.auth import service as auth_service
from meterline.auth.scopes import Scope
from meterline.credits import service as credits
from meterline.credits.schemas import GrantCreate
from meterline.customers import service as customers
from meterline.customers.schemas import CustomerCreate
from meterline.errors import NotFound
from meterline.kit.time import utc_now
from meterline.meters import service as meters
from meterline.meters.schemas import MeterCreate
from meterline.plans import service as plans
from meterline.plans.schemas import PlanCreate
from meterline.recording import pipeline
from meterline.subscriptions import service as subscriptions
from meterline.subscriptions.schemas import SubscriptionCreate
from meterline.workspaces import service as workspaces
from meterline.workspaces.schemas import WorkspaceUpdate

DEMO_WORKSPACE = "demo"

DEMO_CUSTOMERS = [
    CustomerCreate(
        external_id="org_acme",
        name="Acme GmbH",
        email="billing@acme.example",
        timezone="Europe/Berlin",
        metadata={"segment": "enterprise"},
        stripe_customer_id="cus_DemoAcme",
    ),
    CustomerCreate(
        external_id="user_alice", name="Alice (Acme)", parent="org_acme", timezone="Europe/Berlin"
    ),
    CustomerCreate(
        external_id="user_bob", name="Bob (Acme)", parent="org_acme", timezone="Europe/Berlin"
    ),
    CustomerCreate(
        external_id="org_globex",
        name="Globex Inc.",
        email="ap@globex.example",
        timezone="America/New_York",
        metadata={"segment": "growth"},
        stripe_customer_id="cus_DemoGlobex",
    ),
    CustomerCreate(
        external_id="org_initech",
        name="Initech",
        timezone="Asia/Tokyo",
        stripe_customer_id="cus_DemoInitech",
    ),
    CustomerCreate(
        external_id="user_solo",
        name="Sam Solo",
        email="sam@solo.example",
        stripe_customer_id="cus_DemoSolo",
    ),
]
# The Stripe integration is not connected in the demo; customers (members are reported
# through their organization) and the meters whose hours add up carry their mappings,
# ready for PUT /v1/integrations/stripe.


# The default catalog: (meter key, name, unit, units included a month, price per unit
# beyond). api_call and ocr_scan are defined below with their group-bys; storage is the
# month's peak of a daily gauge; the rest count events of their own type.
CATALOG = [
    ("ocr_scan", "OCR scans", "scan", "50", "0.05"),
    ("api_call", "API calls", "call", "10000", "0.001"),
    ("storage", "Storage", "GB", "5", "0.02"),
    ("ai_classification", "AI classifications", "classification", "100", "0.01"),
    ("email", "Emails", "email", "1000", "0.005"),
    ("bank_sync", "Bank syncs", "sync", "30", "0.03"),
    ("sms", "SMS", "message", "100", "0.10"),
    ("pdf_export", "PDF exports", "export", "200", "0.02"),
    ("webhook", "Webhooks", "delivery", "5000", "0.002"),
    ("custom_report", "Custom reports", "report", "50", "0.05"),
]
_COUNTED = [key for key, *_ in CATALOG if key not in ("ocr_scan", "api_call", "storage")]

DEMO_METERS = [
    MeterCreate(
        key="api_call",
        name="API calls",
        event_type="api_call",
        aggregation="count",
        group_by=["endpoint"],
        unit="call",
        stripe_event_name="api_call",
    ),
    MeterCreate(
        key="ocr_scan",
        name="OCR scans",
        event_type="ocr_scan",
        aggregation="count",
        filter={"document": ["receipt", "invoice"]},
        group_by=["document"],
        unit="scan",
        stripe_event_name="ocr_scan",
    ),
    MeterCreate(
        key="storage",
        name="Storage",
        event_type="storage",
        aggregation="max",
        value_property="gb",
        unit="GB",
    ),
    *(
        MeterCreate(
            key=key,
            name=name,
            event_type=key,
            aggregation="count",
            unit=unit,
            stripe_event_name=key,
        )
        for key, name, unit, *_ in CATALOG
        if key in _COUNTED
    ),
    MeterCreate(
        key="llm_tokens",
        name="LLM tokens",
        event_type="llm_call",
        aggregation="sum",
        value_property="usage.tokens",
        group_by=["model"],
        unit="token",
        stripe_event_name="llm_tokens",
    ),
    MeterCreate(
        key="active_users",
        name="Active users",
        event_type="api_call",
        aggregation="unique_count",
        value_property="user",
    ),
    MeterCreate(
        key="ai_insight",
        name="AI insights",
        event_type="ai_insight",
        aggregation="count",
        group_by=["depth"],
        unit="insight",
        stripe_event_name="ai_insight",
    ),
    MeterCreate(
        key="compute_hours",
        name="Compute",
        event_type="job",
        aggregation="duration",
        value_property="seconds",
        unit="hour",
        stripe_event_name="compute_hours",
    ),
]

# (customer, events a day): members' usage is billed to their organization.
_ACTIVITY = [
    ("org_acme", 90),
    ("user_alice", 25),
    ("user_bob", 15),
    ("org_globex", 60),
    ("org_initech", 10),
    ("user_solo", 5),
]


_KINDS = ["api_call", "ocr_scan", "llm_call", "job", "ai_insight", *_COUNTED]
_WEIGHTS = [30, 6, 3, 1, 1, 5, 8, 1, 2, 3, 15, 1]
DEMO_DAYS = 62  # last month closes into an invoice, this month is under way


def _properties(rng: random.Random, kind: str, customer: str) -> dict[str, Any]:
    if kind == "api_call":
        endpoint = rng.choice(["/search", "/export", "/sync"])
        return {"endpoint": endpoint, "user": f"{customer}-u{rng.randrange(8)}"}
    if kind == "ocr_scan":
        return {"document": rng.choice(["receipt", "invoice", "letter"])}
    if kind == "llm_call":
        return {
            "model": rng.choice(["small", "large"]),
            "usage": {"tokens": rng.randrange(200, 4000)},
        }
    if kind == "job":
        return {"seconds": rng.randrange(60, 3600)}
    if kind == "ai_insight":
        return {"depth": rng.choice(["simple", "simple", "advanced"])}
    return {}


def _usage_events(now: datetime) -> list[dict[str, Any]]:
    """Two months of usage, newest first: events of every kind, and each paying
    customer's storage measured once a day (growing)."""
    rng = random.Random(2026)
    events: list[dict[str, Any]] = []
    for customer, per_day in _ACTIVITY:
        for day in range(DEMO_DAYS):
            for n in range(rng.randint(per_day // 2, per_day * 3 // 2)):
                stamp = now - timedelta(days=day, seconds=rng.randrange(86_400))
                kind = rng.choices(_KINDS, _WEIGHTS)[0]
                events.append(
                    {
                        "id": f"demo-{customer}-{day}-{n}",
                        "type": kind,
                        "customer": customer,
                        "timestamp": stamp.isoformat(),
                        "properties": _properties(rng, kind, customer),
                    }
                )
            if not customer.startswith("user_"):
                gb = Decimal(per_day) / 4 + Decimal(DEMO_DAYS - day) / 10
                events.append(
                    {
                        "id": f"demo-{customer}-{day}-storage",
                        "type": "storage",
                        "customer": customer,
                        "timestamp": (now - timedelta(days=day)).isoformat(),
                        "properties": {"gb": str(gb)},
                    }
                )
    # Globex leans on advanced insights (25 credits each): 100 this period spend its
    # Growth allocation of 2,000 and leave 500 credits' worth uncovered.
    for n in range(100):
        stamp = now - timedelta(days=15, seconds=-n * 12_000)
        events.append(
            {
                "id": f"demo-org_globex-insight-{n}",
                "type": "ai_insight",
                "customer": "org_globex",
                "timestamp": stamp.isoformat(),
                "properties": {"depth": "advanced"},
            }
        )
    return events


def _limits(*pairs: tuple[str, str | None, str]) -> list[dict[str, Any]]:
    return [{"window": w, "max": m, "enforcement": e} for w, m, e in pairs]


# Insights cost credits on every tier: 9 each, 25 for an advanced one.
_INSIGHTS = {"credit_cost": {"per_unit": "9", "property": "depth", "values": {"advanced": "25"}}}


def _catalog(scale: int) -> dict[str, Any]:
    """The catalog's features, with ``scale`` times the units included."""
    return {
        key: {
            "included": str(Decimal(included) * scale),
            "price": {"model": "per_unit", "unit_price": price},
        }
        for key, _, _, included, price in CATALOG
    }


def _tier(
    key: str, name: str, base_fee: str, credits: str, scale: int, features: dict[str, Any]
) -> PlanCreate:
    """A credit tier: the catalog (``scale`` times its free units) with the tier's own
    limits; its monthly credit allocation expires at the end of each period."""
    catalog = _catalog(scale)
    for feature, entry in features.items():
        catalog[feature] = {**catalog.get(feature, {}), **entry}
    return PlanCreate.model_validate(
        {
            "key": key,
            "name": name,
            "currency": "USD",
            "base_fee": base_fee,
            "credits": {"amount": credits, "expires_at_period_end": True},
            "features": {**catalog, "ai_insight": _INSIGHTS},
        }
    )


DEMO_PLANS = [
    _tier(
        "explorer",
        "Explorer",
        "0",
        "400",
        1,
        {
            "api_call": {"limits": _limits(("month", "10000", "hard"))},
            "ocr_scan": {"limits": _limits(("day", "20", "hard"), ("month", "100", "hard"))},
            "llm_tokens": {"limits": _limits(("day", "50000", "hard"))},
            "compute_hours": {"enabled": False},
        },
    ),
    _tier(
        "growth",
        "Growth",
        "19.00",
        "2000",
        1,
        {
            "api_call": {"limits": _limits(("month", "200000", "hard"))},
            "ocr_scan": {"limits": _limits(("day", "100", "hard"))},
            "llm_tokens": {"limits": _limits(("day", "500000", "hard"))},
            "active_users": {"price": {"model": "per_unit", "unit_price": "5"}},
            "compute_hours": {"limits": _limits(("period", "100", "soft"))},
        },
    ),
    _tier(
        "pro",
        "Pro",
        "49.00",
        "7000",
        2,
        {
            "api_call": {"limits": _limits(("minute", "600", "hard"), ("month", None, "hard"))},
            "ocr_scan": {"limits": _limits(("day", "200", "hard"), ("month", "1000", "soft"))},
            "llm_tokens": {
                "price": {
                    "model": "graduated",
                    "tiers": [
                        {"up_to": "1000000", "unit_price": "0"},
                        {"up_to": None, "unit_price": "0.000002"},
                    ],
                },
                "limits": _limits(("day", "2000000", "hard")),
            },
            "active_users": {"price": {"model": "per_unit", "unit_price": "4"}},
            "compute_hours": {"limits": _limits(("period", "500", "soft"))},
        },
    ),
    _tier(
        "enterprise",
        "Enterprise",
        "499.00",
        "20000",
        10,
        {
            "llm_tokens": {},
            "active_users": {"price": {"model": "per_unit", "unit_price": "3"}},
            "compute_hours": {},
        },
    ),
]
# (customer, plan, billing anchor, days ago); user_solo is on the default plan.
DEMO_SUBSCRIPTIONS: list[tuple[str, str, Literal["calendar", "anniversary"], int]] = [
    ("org_acme", "pro", "calendar", 45),
    ("org_globex", "growth", "anniversary", 20),
    ("org_initech", "enterprise", "calendar", 60),
]
# A purchased pack on top of Acme's monthly allocation (which expires first, so burns first).
DEMO_PURCHASES = [("org_acme", GrantCreate(amount=Decimal(5000), description="Credit pack"))]


def seed(session: Session, workspace_id: int) -> None:
    """Fill a new demo workspace (call once, right after creating it): customers, meters,
    the catalog's plans and subscriptions, and two months of usage (`meterline serve
    --demo` then runs the due jobs, which close last month into invoices)."""
    for customer in DEMO_CUSTOMERS:
        customers.create(session, workspace_id, customer)
    for meter in DEMO_METERS:
        meters.create(session, workspace_id, meter)
    for plan in DEMO_PLANS:
        plans.create(session, workspace_id, plan)
    workspaces.update(
        session,
        workspace_id,
        WorkspaceUpdate(default_plan="explorer"),
        plans.get(session, workspace_id, "explorer").id,
    )
    now = utc_now()
    for external_id, plan_key, anchor, days in DEMO_SUBSCRIPTIONS:
        subscriptions.create(
            session,
            workspace_id,
            SubscriptionCreate(
                customer=external_id,
                plan=plan_key,
                billing_anchor=anchor,
                start_at=now - timedelta(days=days),
            ),
        )
    for external_id, purchase in DEMO_PURCHASES:
        credits.grant(session, workspace_id, external_id, purchase, now)
    policy = pipeline.policy(session, workspace_id)
    valid, _ = pipeline.check(_usage_events(utc_now() - timedelta(minutes=1)), policy)
    pipeline.record(session, policy, valid)


def ensure(session: Session, *, admin_key: str | None = None) -> tuple[bool, str]:
    """The demo workspace, made and filled on first use.

    Returns whether it was created now, and an admin key for it: the first one (which
    is ``admin_key`` when given) or, on later starts, a fresh ``demo session`` key,
    since stored keys cannot be shown again.
    """
    try:
        existing = workspaces.find_workspace(session, DEMO_WORKSPACE)
    except NotFound:
        created = onboarding.create_workspace(session, DEMO_WORKSPACE, admin_key=admin_key)
        seed(session, created.workspace.id)
        return True, created.admin_key
    _, key = auth_service.create_key(
        session, existing.id, name="demo session", scopes=[Scope.ADMIN]
    )
    return False, key
