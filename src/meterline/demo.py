"""Demo data for `meterline serve --demo`: a workspace whose every page has content.

Each later domain adds its part (meters, plans, a month of usage) here.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from meterline.auth import service as auth_service
from meterline.auth.scopes import Scope
from meterline.customers import service as customers
from meterline.customers.schemas import CustomerCreate
from meterline.errors import NotFound
from meterline.workspaces import service as workspaces

DEMO_WORKSPACE = "demo"

DEMO_CUSTOMERS = [
    CustomerCreate(
        external_id="org_acme",
        name="Acme GmbH",
        email="billing@acme.example",
        timezone="Europe/Berlin",
        metadata={"segment": "enterprise"},
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
    ),
    CustomerCreate(external_id="org_initech", name="Initech", timezone="Asia/Tokyo"),
    CustomerCreate(external_id="user_solo", name="Sam Solo", email="sam@solo.example"),
]


def seed(session: Session, workspace_id: int) -> None:
    """Fill a new demo workspace (call once, right after creating it)."""
    for customer in DEMO_CUSTOMERS:
        customers.create(session, workspace_id, customer)


def ensure(session: Session, *, admin_key: str | None = None) -> tuple[bool, str]:
    """The demo workspace, made and filled on first use.

    Returns whether it was created now, and an admin key for it: the first one (which
    is ``admin_key`` when given) or, on later starts, a fresh ``demo session`` key,
    since stored keys cannot be shown again.
    """
    try:
        existing = workspaces.find_workspace(session, DEMO_WORKSPACE)
    except NotFound:
        created = workspaces.create_workspace(session, DEMO_WORKSPACE, admin_key=admin_key)
        seed(session, created.workspace.id)
        return True, created.admin_key
    _, key = auth_service.create_key(
        session, existing.id, name="demo session", scopes=[Scope.ADMIN]
    )
    return False, key
