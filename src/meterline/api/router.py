"""The API: every domain's routes (each declares its full ``/v1/…`` path).

Routes are matched one after another, so the hot paths (recording events, checks)
come first, and the domain routers are included in the app directly (not through one
more nested router: each level of nesting is matched again on every request).
"""

from __future__ import annotations

from fastapi import APIRouter

from meterline.alerts.routes import router as alerts
from meterline.auth.routes import router as api_keys
from meterline.auth.routes import tokens_router as customer_tokens
from meterline.billing_sync.routes import router as stripe
from meterline.configfile.routes import router as config
from meterline.credits.routes import router as credits
from meterline.customers.routes import router as customers
from meterline.entitlements.routes import router as entitlements
from meterline.invoicing.routes import router as invoices
from meterline.meters.routes import router as meters
from meterline.plans.routes import router as plans
from meterline.pricing.routes import router as usage
from meterline.recording.routes import router as events
from meterline.subscriptions.routes import router as subscriptions
from meterline.webhooks.routes import router as webhooks
from meterline.workspaces.routes import router as workspace

V1_ROUTERS: tuple[APIRouter, ...] = (
    events,
    entitlements,
    customers,
    credits,
    usage,
    invoices,
    meters,
    plans,
    subscriptions,
    alerts,
    webhooks,
    stripe,
    api_keys,
    customer_tokens,
    workspace,
    config,
)
