"""Apps on one database for the rate limit tests: each as a separate process would be."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from meterline.app import create_app
from meterline.auth import onboarding
from meterline.config import Settings
from meterline.db import Database
from meterline.ratelimits.models import RateLimitState
from support import Api

SLOW = 0.01  # one request per 100 s after the burst: nothing refills during a test


def stored_states(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(RateLimitState)) or 0)


@contextmanager
def apps(database_url: str, count: int = 1, **settings: Any) -> Iterator[list[Api]]:
    """``count`` apps (as separate processes would be) on one database, each with its
    own client and the same admin key."""
    configured = Settings(database_url=database_url, jobs_poll_seconds=0, **settings)
    db = Database(database_url, configured)
    with db.write() as session:
        created = onboarding.create_workspace(session, "alpha")
    db.dispose()
    with ExitStack() as stack:
        clients = [stack.enter_context(TestClient(create_app(configured))) for _ in range(count)]
        yield [Api(c, created.admin_key, created.workspace.id) for c in clients]


def statuses(api: Api, n: int) -> list[int]:
    return [api.get("/v1/meters").status_code for _ in range(n)]


def key_with(api: Api, rate_limit: dict[str, Any] | None, *scopes: str) -> tuple[Api, str]:
    """A new key (``read`` unless ``scopes``) with this ``rate_limit``, and its id."""
    body = {"name": "limited", "scopes": list(scopes or ["read"]), "rate_limit": rate_limit}
    r = api.post("/v1/api-keys", json=body)
    assert r.status_code == 201, r.text
    return api.with_key(r.json()["key"]), r.json()["id"]
