"""The web dashboard (``/dashboard``) and the customer portal (``/portal/{token}``):
server-rendered pages over the same service functions as the API (SPEC §10)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from meterline.config import Settings
from meterline.dashboard import catalog_routes, customer_routes, routes, stripe_routes
from meterline.dashboard.snapshot import Snapshots
from meterline.dashboard.web import STATIC, SecurityHeaders
from meterline.db import Database

STATIC_FILES = Path(__file__).parent / "static"
ROUTERS = (
    routes.router,
    customer_routes.router,
    catalog_routes.router,
    stripe_routes.router,
    routes.portal_router,
)


@dataclass
class DashboardState:
    """The dashboard's runtime state in one process."""

    snapshots: Snapshots


def install(app: FastAPI, settings: Settings) -> None:
    """The pages, their static files and their security headers (no I/O)."""
    app.mount(STATIC, StaticFiles(directory=STATIC_FILES), name="dashboard-static")
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(SecurityHeaders, portal_ancestors=settings.portal_frame_ancestors)


def start(db: Database, settings: Settings) -> DashboardState:
    """At start-up, with the process's database."""
    return DashboardState(Snapshots(db, settings.dashboard_snapshot_seconds))
