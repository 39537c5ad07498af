"""Every table, imported in one place so Alembic and tests see the whole schema."""

from meterline.auth.models import ApiKey
from meterline.customers.models import Customer
from meterline.db import Base
from meterline.ingestion.models import Event
from meterline.meters.models import Meter, MeterRollup, MeterUnique
from meterline.workspaces.models import Workspace

metadata = Base.metadata

__all__ = [
    "ApiKey",
    "Customer",
    "Event",
    "Meter",
    "MeterRollup",
    "MeterUnique",
    "Workspace",
    "metadata",
]
