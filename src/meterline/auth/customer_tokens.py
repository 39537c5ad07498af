"""Issuing customer tokens (``mlct_…``): the API's ``POST /v1/customers/{id}/tokens`` and
the dashboard's portal links call this one function."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from meterline.auth import tokens
from meterline.auth.schemas import TokenCreated
from meterline.customers import service as customers
from meterline.errors import MeterlineError
from meterline.workspaces import service as workspaces


def issue(
    session: Session, workspace_id: int, external_id: str, ttl_seconds: int, now: datetime
) -> TokenCreated:
    """A token for one customer of the workspace, valid ``ttl_seconds`` from ``now``
    (404 for an unknown customer). Makes the workspace's token secret on first use."""
    customer = customers.get(session, workspace_id, external_id)
    secret = workspaces.token_secret(session, workspace_id, create=True)
    if secret is None:  # pragma: no cover - made just now when missing
        raise MeterlineError("the workspace has no token secret")
    expires_at = now + timedelta(seconds=ttl_seconds)
    token = tokens.issue(secret, workspace_id, customer.external_id, expires_at)
    return TokenCreated(token=token, customer=customer.external_id, expires_at=expires_at)
