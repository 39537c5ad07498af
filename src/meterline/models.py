"""Every table, imported in one place so Alembic and tests see the whole schema."""

from meterline.alerts.models import Alert
from meterline.api.idempotency import IdempotencyKey
from meterline.auth.models import ApiKey
from meterline.billing_sync.models import (
    StripeIntegration,
    StripeReport,
    StripeReportAttempt,
    StripeUsageHour,
    StripeUsageSeries,
)
from meterline.credits.models import CreditDraw, CreditEntry, CreditGrant, CreditWallet
from meterline.customers.models import Customer
from meterline.db import Base
from meterline.entitlements.models import Reservation, UsageCounter, UsageGuard
from meterline.ingestion.models import Event, IngestStat
from meterline.invoicing.models import Invoice, InvoiceNumber
from meterline.jobs.models import Job
from meterline.meters.models import Meter, MeterRollup, MeterUnique
from meterline.plans.models import Plan
from meterline.ratelimits.models import RateLimitState
from meterline.subscriptions.models import Subscription, SubscriptionPhase
from meterline.webhooks.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from meterline.workspaces.models import Workspace

metadata = Base.metadata

__all__ = [
    "Alert",
    "ApiKey",
    "CreditDraw",
    "CreditEntry",
    "CreditGrant",
    "CreditWallet",
    "Customer",
    "Event",
    "IdempotencyKey",
    "IngestStat",
    "Invoice",
    "InvoiceNumber",
    "Job",
    "Meter",
    "MeterRollup",
    "MeterUnique",
    "Plan",
    "RateLimitState",
    "Reservation",
    "StripeIntegration",
    "StripeReport",
    "StripeReportAttempt",
    "StripeUsageHour",
    "StripeUsageSeries",
    "Subscription",
    "SubscriptionPhase",
    "UsageCounter",
    "UsageGuard",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookMessage",
    "Workspace",
    "metadata",
]
