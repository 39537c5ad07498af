"""A key's own request rate (`rate_limit` on the key) through the real app, on both
databases: in place of the server-wide default or with it off, `per_second: null` for
a key never limited, on the check fast path too, shared by every app (process) on the
database, and a change seen at once by the app that made it and within the key cache's
TTL by the others."""

from __future__ import annotations

import time

from limits_support import customer_on, meter, plan_with
from meterline.db import Database
from ratelimits_support import SLOW, apps, key_with, statuses, stored_states
from support import assert_problem

OWN = {"per_second": SLOW, "burst": 2}
UNLIMITED = {"per_second": None}


def test_a_keys_own_rate_with_the_default_off(database_url: str) -> None:
    with apps(database_url) as (api,):
        limited, _ = key_with(api, OWN)
        plain = api.new_key("read")
        assert statuses(limited, 3) == [200, 200, 429]
        refused = assert_problem(limited.get("/v1/meters"), 429, "rate_limited")
        assert "0.01 requests a second (2 at once)" in refused["detail"]
        assert 99 <= refused["retry_after"] <= 100
        # Other keys have no rate: never limited, never counted.
        assert set(statuses(plain, 30) + statuses(api, 30)) == {200}
        # One row, the limited key's, where the count is shared (PostgreSQL); SQLite's
        # one process counts in memory.
        db = Database(database_url)
        try:
            assert stored_states(db) == (0 if database_url.startswith("sqlite") else 1)
        finally:
            db.dispose()


def test_a_keys_own_rate_in_place_of_the_default(database_url: str) -> None:
    # The default: 4 at once. One key has 6 of its own, another none at all.
    with apps(database_url, rate_limit_per_second=SLOW, rate_limit_burst=4) as (api,):
        wider, _ = key_with(api, {"per_second": SLOW, "burst": 6})
        free, _ = key_with(api, UNLIMITED)  # the admin key's second request
        assert statuses(wider, 7) == [200] * 6 + [429]
        assert set(statuses(free, 40)) == {200}
        assert statuses(api, 3) == [200, 200, 429]  # the default still holds the admin


def test_checks_on_the_fast_path_follow_the_keys_rate(database_url: str) -> None:
    # Keys cached and untouched for a minute: from a key's third request on, checks
    # are answered by the fast path.
    settings = {"rate_limit_per_second": SLOW, "rate_limit_burst": 20}
    with apps(database_url, api_key_touch_seconds=60, **settings) as (api,):
        meter(api, "q")
        plan_with(api, {"q": {"limits": [{"window": "day", "max": "100"}]}})
        customer_on(api, "acme")
        limited, _ = key_with(api, {"per_second": SLOW, "burst": 4}, "ingest")
        free, _ = key_with(api, UNLIMITED, "ingest")  # 7 of the admin's 20 so far
        assert statuses(limited, 2) == [200, 200]  # loaded, touched, cached
        assert statuses(free, 2) == [200, 200]
        body = {"customer": "acme", "feature": "q", "consume": True}
        answers = [limited.post("/v1/check", json={**body, "id": f"l{i}"}) for i in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 429]
        assert_problem(answers[2], 429, "rate_limited")
        for i in range(25):  # past the default's burst: the unlimited key is not held
            r = free.post("/v1/check", json={**body, "id": f"f{i}"})
            assert r.status_code == 200, r.text
        used = api.get("/v1/customers/acme/entitlements").json()["features"][0]["limits"][0]
        assert used["used"] == "27"  # 2 + 25 consumes; the refused one stored nothing


def test_a_change_applies_here_at_once_and_elsewhere_within_the_cache_ttl(
    database_url: str,
) -> None:
    # Two apps sharing the count (as `serve --workers 2`, or PostgreSQL, run them);
    # keys cached for 0.3 s; no default rate.
    ttl = 0.3
    with apps(database_url, count=2, workers=2, cache_seconds=ttl) as (one, two):
        key, key_id = key_with(one, None)
        here, there = key, key.with_client(two.client)
        assert set(statuses(here, 3) + statuses(there, 3)) == {200}  # cached on both
        r = one.patch(f"/v1/api-keys/{key_id}", json={"rate_limit": OWN})
        assert r.json()["rate_limit"] == {"per_second": "0.01", "burst": 2}
        assert statuses(here, 3) == [200, 200, 429]  # at once where it was changed
        time.sleep(ttl)
        # The other app now holds the key to the same rate, and the same count.
        assert_problem(there.get("/v1/meters"), 429, "rate_limited")
        r = one.patch(f"/v1/api-keys/{key_id}", json={"rate_limit": UNLIMITED})
        assert r.json()["rate_limit"] == {"per_second": None, "burst": None}
        assert set(statuses(here, 5)) == {200}
        time.sleep(ttl)
        assert set(statuses(there, 5)) == {200}
        # Back on the default (off): still not limited.
        r = one.patch(f"/v1/api-keys/{key_id}", json={"rate_limit": None})
        assert r.json()["rate_limit"] is None
        assert set(statuses(here, 5)) == {200}


def test_a_keys_own_rate_is_one_count_across_processes(database_url: str) -> None:
    with apps(database_url, count=2, workers=2) as (one, two):
        key, _ = key_with(one, {"per_second": SLOW, "burst": 5})
        other = key.with_client(two.client)
        answers = [(key, other)[i % 2].get("/v1/meters").status_code for i in range(10)]
        assert answers == [200] * 5 + [429] * 5
