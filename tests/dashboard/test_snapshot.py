"""The revenue snapshot: exactly what the API answered at its instant, refreshed in
the background, and waited for after a change."""

from __future__ import annotations

from dashboard_support import populate
from meterline.dashboard import snapshot
from meterline.db import Database
from meterline.kit.time import Clock, clock, utc_now
from support import Api


def test_a_snapshot_is_what_the_api_answered_at_its_instant(api: Api, db: Database) -> None:
    populate(api)
    frozen = Clock(utc_now())
    with clock(frozen):
        taken = snapshot.take(db, api.workspace_id)
        upcoming = api.get("/v1/customers/org_a/invoices/upcoming").json()
        forecast = api.get("/v1/customers/org_a/usage/forecast").json()
        rights = api.get("/v1/customers/org_a/entitlements").json()
    assert taken.as_of == frozen.now
    by_id = {f.external_id: f for f in taken.customers.values()}
    assert set(by_id) == {"org_a", "solo"}  # billed customers only: user_a1 is a member
    org = by_id["org_a"]
    assert (org.plan, org.currency) == ("pro", "USD")
    assert format(org.total, "f") == upcoming["total"]
    assert format(org.projected, "f") == forecast["total"]
    assert [line.model_dump(mode="json") for line in org.lines] == upcoming["lines"]
    month = next(
        lim
        for f in rights["features"]
        if f["feature"] == "scans"
        for lim in f["limits"]
        if lim["window"] == "month"
    )
    assert (month["used"], month["max"]) == ("8", "10")  # 80 %: near
    assert org.status == "near"
    assert by_id["solo"].plan is None  # no subscription, no default plan
    assert taken.by_currency(lambda f: f.total) == {"USD": org.total}
    assert taken.active == 1


def test_snapshots_refresh_in_the_background_and_after_a_change(api: Api, db: Database) -> None:
    populate(api)
    shots = snapshot.Snapshots(db, max_age_seconds=3600)
    try:
        first = shots.get(api.workspace_id)  # none yet: waits for the first
        assert first is not None
        assert shots.get(api.workspace_id) is first  # fresh enough: kept
        sub = {"customer": "solo", "plan": "basic"}
        assert api.post("/v1/subscriptions", json=sub).status_code == 201
        assert shots.get(api.workspace_id) is first  # a change elsewhere: within max age
        shots.invalidate(api.workspace_id)  # a change made in the dashboard
        second = shots.get(api.workspace_id)
        assert second is not None
        assert second is not first
        solo = next(f for f in second.customers.values() if f.external_id == "solo")
        assert solo.plan == "basic"
        assert solo.total > 0  # the base fee, prorated from today
    finally:
        shots.close()
