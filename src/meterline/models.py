"""Every table, imported in one place so Alembic and tests see the whole schema."""

from meterline.auth.models import ApiKey
from meterline.customers.models import Customer
from meterline.db import Base
from meterline.entitlements.models import Reservation, UsageCounter, UsageGuard
from meterline.ingestion.models import Event
from meterline.meters.models import Meter, MeterRollup, MeterUnique
from meterline.plans.models import Plan
from meterline.subscriptions.models import Subscription, SubscriptionPhase
from meterline.workspaces.models import Workspace

metadata = Base.metadata

__all__ = [
    "ApiKey",
    "Customer",
    "Event",
    "Meter",
    "MeterRollup",
    "MeterUnique",
    "Plan",
    "Reservation",
    "Subscription",
    "SubscriptionPhase",
    "UsageCounter",
    "UsageGuard",
    "Workspace",
    "metadata",
]
