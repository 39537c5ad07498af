"""Per-key request rate limits through the real app, on both databases: off by default
(nothing stored), 429 `rate_limited` with Retry-After over the rate, per key, on the
check fast path too, and one limit shared by every app (process) on the database."""

from __future__ import annotations

from typing import Any

import pytest

from limits_support import customer_on, meter, plan_with
from meterline.config import Settings
from meterline.db import Database
from meterline.ratelimits.service import LocalLimiter, SharedLimiter
from meterline.runtime import runtime_of
from ratelimits_support import SLOW, apps, statuses, stored_states
from support import Api, assert_problem


def limiter_of(api: Api) -> Any:
    return runtime_of(api.client.app).rate_limiter


@pytest.mark.parametrize("workers", [1, 2])
def test_off_by_default_and_nothing_is_counted(database_url: str, workers: int) -> None:
    assert Settings().rate_limit_per_second == 0
    with apps(database_url, workers=workers) as (api,):
        reader = api.new_key("read")
        assert set(statuses(api, 20) + statuses(reader, 20)) == {200}
        # Nothing runs per request: the cached keys carry no rate, the limiter never
        # sees a request (no row on the database; none in memory either).
        db = runtime_of(api.client.app).db
        assert stored_states(db) == 0
        limiter = limiter_of(api)
        if isinstance(limiter, LocalLimiter):
            assert limiter._tats == {}


def test_over_the_rate_is_429_with_retry_after(database_url: str) -> None:
    with apps(database_url, rate_limit_per_second=SLOW, rate_limit_burst=3) as (api,):
        assert statuses(api, 3) == [200, 200, 200]
        refused = api.get("/v1/meters")
        problem = assert_problem(refused, 429, "rate_limited")
        retry_after = int(refused.headers["Retry-After"])
        assert 99 <= retry_after <= 100  # one interval of 100 s, from the first request
        assert problem["retry_after"] == retry_after
        # Writes are refused the same way, and change nothing.
        r = api.post("/v1/customers", json={"external_id": "late"})
        assert_problem(r, 429, "rate_limited")
        # No key, a bad key: still 401 (the limit is per key, after authentication).
        assert api.client.get("/v1/meters").status_code == 401
        assert api.with_key("ml_" + "x" * 40).get("/v1/meters").status_code == 401


def test_each_key_has_its_own_limit(database_url: str) -> None:
    with apps(database_url, rate_limit_per_second=SLOW, rate_limit_burst=2) as (api,):
        reader = api.new_key("read")  # the admin's first request
        assert statuses(reader, 3) == [200, 200, 429]
        assert statuses(api, 2) == [200, 429]


def test_checks_on_the_fast_path_are_limited(database_url: str) -> None:
    # Keys cached and untouched for a minute: checks are answered by the fast path.
    with apps(
        database_url, rate_limit_per_second=SLOW, rate_limit_burst=7, api_key_touch_seconds=60
    ) as (api,):
        reader = api.new_key("read")  # a key of its own, with its own limit
        meter(api, "q")
        plan_with(api, {"q": {"limits": [{"window": "day", "max": "100"}]}})
        customer_on(api, "acme")  # 5 requests so far
        body = {"customer": "acme", "feature": "q", "consume": True}
        first = api.post("/v1/check", json={**body, "id": "c1"})
        second = api.post("/v1/check", json={**body, "id": "c2"})
        assert (first.json()["allowed"], second.json()["allowed"]) == (True, True)
        refused = api.post("/v1/check", json={**body, "id": "c3"})
        assert_problem(refused, 429, "rate_limited")
        assert int(refused.headers["Retry-After"]) >= 1
        # The refused consume stored nothing.
        listed = reader.get("/v1/events", params={"customer": "acme"}).json()["data"]
        assert sorted(e["id"] for e in listed) == ["c1", "c2"]


def test_one_limit_across_processes(database_url: str, db: Database) -> None:
    # Two apps on one database (on SQLite as `serve --workers 2` runs them): the key's
    # burst of 5 is shared, whichever process answers.
    shared = {"workers": 2, "rate_limit_per_second": SLOW, "rate_limit_burst": 5}
    with apps(database_url, count=2, **shared) as (one, two):
        assert isinstance(limiter_of(one), SharedLimiter)
        answers = [(one, two)[i % 2].get("/v1/meters").status_code for i in range(12)]
        assert answers == [200] * 5 + [429] * 7
    assert stored_states(db) == 1  # one row for the key, however many requests


def test_one_sqlite_process_keeps_its_count_in_memory(database_url: str, db: Database) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL always shares the count through the database")
    with apps(database_url, rate_limit_per_second=SLOW, rate_limit_burst=2) as (api,):
        assert isinstance(limiter_of(api), LocalLimiter)
        assert statuses(api, 3) == [200, 200, 429]
    assert stored_states(db) == 0  # no write per request on SQLite's single lock
