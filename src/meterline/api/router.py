"""The API: every domain's routes (each declares its full ``/v1/…`` path)."""

from __future__ import annotations

from fastapi import APIRouter

from meterline.auth.routes import router as api_keys
from meterline.customers.routes import router as customers
from meterline.ingestion.routes import router as events
from meterline.meters.routes import router as meters
from meterline.workspaces.routes import router as workspace

v1 = APIRouter()
v1.include_router(api_keys)
v1.include_router(customers)
v1.include_router(events)
v1.include_router(meters)
v1.include_router(workspace)
