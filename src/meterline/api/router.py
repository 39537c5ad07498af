"""The API: every domain's routes (each declares its full ``/v1/…`` path)."""

from __future__ import annotations

from fastapi import APIRouter

from meterline.auth.routes import router as api_keys
from meterline.customers.routes import router as customers

v1 = APIRouter()
v1.include_router(api_keys)
v1.include_router(customers)
