"""Every table, imported in one place so Alembic and tests see the whole schema."""

from meterline.auth.models import ApiKey
from meterline.customers.models import Customer
from meterline.db import Base
from meterline.workspaces.models import Workspace

metadata = Base.metadata

__all__ = ["ApiKey", "Customer", "Workspace", "metadata"]
