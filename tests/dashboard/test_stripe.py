"""The Stripe page through the real app, against the fake Stripe: the connection's
status is GET /v1/integrations/stripe's, failed reports are listed and retried, a sync
is queued, reconciliation finds a planted difference and repairs it; read sessions see
no form and their posts get 403; CSRF; another workspace's reports are 404; the
overview shows Stripe sync failures."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from billing_sync.fake_stripe import FakeStripe
from dashboard_support import Browser, signed_in
from jobs_support import run_jobs
from meterline.config import Settings
from meterline.kit.time import Clock, utc_now
from meterline.kit.time import clock as using_clock
from support import Api


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    found = FakeStripe(now=utc_now)
    yield found
    found.close()


@pytest.fixture
def settings(database_url: str, fake: FakeStripe) -> Settings:
    return Settings(
        database_url=database_url,
        api_key_touch_seconds=0,
        credit_sweep_seconds=0,
        jobs_poll_seconds=0,
        stripe_api_base=fake.api_base,
        stripe_meter_events_base=fake.meter_events_base,
        stripe_requests_per_second=10_000,
        stripe_timeout_seconds=2,
    )


def _acme_on_tokens(api: Api, fake: FakeStripe) -> str:
    """A mapped ``tokens`` sum meter and customer ``acme``, Stripe connected in
    meter_events mode, and 5 tokens at 08:00; returns acme's Stripe customer."""
    fake.meter("tokens")
    meter = {"key": "tokens", "event_type": "tokens", "aggregation": "sum"}
    assert api.post("/v1/meters", json={**meter, "stripe_event_name": "tokens"}).status_code == 201
    stripe_id = fake.customer("acme")
    customer = {"external_id": "acme", "stripe_customer_id": stripe_id}
    assert api.post("/v1/customers", json=customer).status_code == 201
    body = {"secret_key": fake.secret_key, "mode": "meter_events"}
    assert api.request("PUT", "/v1/integrations/stripe", json=body).status_code == 200
    event = {
        "id": "t1",
        "type": "tokens",
        "customer": "acme",
        "timestamp": _hours_ago(4),
        "quantity": "5",
    }
    assert api.post("/v1/events", json={"events": [event]}).json()["accepted"] == 1
    return stripe_id


def _failed_report(api: Api, fake: FakeStripe) -> dict[str, Any]:
    fake.fail("/v1/billing/meter_events", status=400)
    run_jobs(api)
    found = api.get("/v1/integrations/stripe/reports", params={"status": "failed"}).json()
    (report,) = found["data"]
    return dict(report)


def _figure(page: str, name: str) -> str:
    found = re.search(rf'data-figure="{re.escape(name)}">(.*?)</dd>', page, re.S)
    assert found is not None, name
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


@pytest.fixture
def clock() -> Iterator[Clock]:
    """Time stands still at the start of this hour (the browser-like client keeps the
    session cookie by the real time, so the clock stays near it)."""
    found = Clock(utc_now().replace(minute=0, second=0, microsecond=0))
    with using_clock(found):
        yield found


def _hours_ago(hours: float) -> str:
    """An ISO time ``hours`` before the frozen clock's now."""
    return (utc_now() - timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def test_not_connected_page_says_so_and_offers_no_action(api: Api) -> None:
    admin = signed_in(api)
    page = admin.get("/dashboard/stripe")
    assert page.status_code == 200
    assert _figure(page.text, "status") == "not_connected"
    assert "PUT /v1/integrations/stripe" in page.text
    assert 'action="/dashboard/stripe/sync"' not in page.text
    assert 'href="/dashboard/stripe"' in page.text  # in the navigation
    refused = admin.post("/dashboard/stripe/sync")
    assert refused.status_code == 409
    assert "Connect Stripe first" in refused.text
    overview = admin.get("/dashboard").text
    assert "Stripe sync failures" in overview
    assert "Stripe is not connected." in overview


def test_status_and_failed_reports_are_the_apis_and_retry_sends_it(
    api: Api, fake: FakeStripe, clock: Clock
) -> None:
    cus = _acme_on_tokens(api, fake)
    report = _failed_report(api, fake)
    admin = signed_in(api)
    page = admin.get("/dashboard/stripe").text
    status = api.get("/v1/integrations/stripe").json()
    assert _figure(page, "status") == status["status"] == "connected"
    assert _figure(page, "mode") == "meter_events"
    assert _figure(page, "key") == "…" + fake.secret_key[-4:]
    assert (_figure(page, "failed"), _figure(page, "pending")) == ("1", "0")
    assert (status["failed"], status["pending"]) == (1, 0)
    assert _figure(page, "lag") == "4 h"  # the event's hour is the oldest Stripe lacks
    assert status["lag_seconds"] == 4 * 3600
    assert f'data-report="{report["id"]}"' in page
    assert "Injected failure." in page
    overview = admin.get("/dashboard").text
    assert re.search(r'data-figure="stripe-failed">1<', overview)
    assert report["id"] in overview

    retried = admin.post(f"/dashboard/stripe/reports/{report['id']}/retry")
    assert retried.status_code == 303
    assert "is+pending" in retried.headers["location"]
    assert api.get("/v1/integrations/stripe").json()["failed"] == 0
    run_jobs(api)
    assert fake.total(cus, "tokens") == 5
    after = admin.get("/dashboard/stripe").text
    assert _figure(after, "failed") == "0"
    assert "No failed reports." in after
    assert _figure(after, "last-reported") != "—"


def test_retry_every_failed_report_and_sync_now(api: Api, fake: FakeStripe, clock: Clock) -> None:
    cus = _acme_on_tokens(api, fake)
    _failed_report(api, fake)
    admin = signed_in(api)
    done = admin.post("/dashboard/stripe/retry-failed")
    assert done.status_code == 303
    assert "1+failed+report" in done.headers["location"]
    run_jobs(api)
    assert fake.total(cus, "tokens") == 5
    later = {
        "id": "t2",
        "type": "tokens",
        "customer": "acme",
        "timestamp": _hours_ago(2.5),
        "quantity": "3",
    }
    assert api.post("/v1/events", json={"events": [later]}).json()["accepted"] == 1
    queued = admin.post("/dashboard/stripe/sync")
    assert queued.status_code == 303
    assert "Sync+queued" in queued.headers["location"]
    run_jobs(api)
    assert fake.total(cus, "tokens") == 8


def test_reconcile_finds_a_planted_difference_and_repair_closes_it(
    api: Api, fake: FakeStripe, clock: Clock
) -> None:
    cus = _acme_on_tokens(api, fake)
    run_jobs(api)
    assert fake.total(cus, "tokens") == 5
    admin = signed_in(api)
    form = {"from": _hours_ago(12), "to": _hours_ago(0)}
    clean = admin.post("/dashboard/stripe/reconcile", form)
    assert clean.status_code == 200
    assert "Stripe matches Meterline for 1 customer and meter pair(s)" in clean.text

    (sent,) = api.get("/v1/integrations/stripe/reports").json()["data"]
    fake.lose(sent["identifier"])
    found = admin.post("/dashboard/stripe/reconcile", form).text
    apis = api.post("/v1/integrations/stripe/reconcile", json=form).json()
    (row,) = apis["differences"]
    assert (row["stripe"], row["reported"]) == (0, 5)
    assert re.search(r'data-figure="stripe-acme-tokens">0<', found)
    assert re.search(r'data-figure="reported-acme-tokens">5<', found)
    assert "1 difference(s) in 1 customer and meter pair(s)" in found

    repaired = admin.post("/dashboard/stripe/reconcile", {**form, "repair": "1"}).text
    assert "1 report(s) queued to close them" in repaired
    run_jobs(api)
    assert fake.total(cus, "tokens") == 5
    again = admin.post("/dashboard/stripe/reconcile", form).text
    assert "Stripe matches Meterline" in again


def test_reconcile_problems_are_shown_by_their_field(
    api: Api, fake: FakeStripe, clock: Clock
) -> None:
    _acme_on_tokens(api, fake)
    admin = signed_in(api)
    for form, status, message in (
        ({"from": _hours_ago(11.5), "to": _hours_ago(10)}, 422, "whole hour"),
        ({"from": _hours_ago(12), "to": _hours_ago(-12)}, 422, "after now"),
        ({"from": "yesterday", "to": _hours_ago(10)}, 422, ""),
        ({"from": _hours_ago(8), "to": _hours_ago(10)}, 422, "before"),
    ):
        answer = admin.post("/dashboard/stripe/reconcile", form)
        assert answer.status_code == status, (form, answer.text[-2000:])
        assert re.search(r'class="error" id="err-(from|to)">[^<]*' + message, answer.text), form
        assert f'value="{form["from"]}"' in answer.text  # what was typed stays
    fake.fail("/v1/billing/meters", status=500, times=5)  # Stripe does not answer
    down = admin.post("/dashboard/stripe/reconcile", {"from": _hours_ago(12), "to": _hours_ago(10)})
    assert down.status_code == 502
    assert re.search(r"data-problem>Stripe: ", down.text)


def test_read_sessions_see_no_form_and_their_posts_are_403(
    api: Api, fake: FakeStripe, clock: Clock
) -> None:
    _acme_on_tokens(api, fake)
    report = _failed_report(api, fake)
    reader = signed_in(api, "read")
    page = reader.get("/dashboard/stripe").text
    assert report["id"] in page
    assert "<form" not in page
    token = reader.csrf()
    for path, data in (
        (f"/dashboard/stripe/reports/{report['id']}/retry", {}),
        ("/dashboard/stripe/retry-failed", {}),
        ("/dashboard/stripe/sync", {}),
        ("/dashboard/stripe/reconcile", {"from": _hours_ago(12), "to": _hours_ago(10)}),
    ):
        answer = reader.post(path, {**data, "csrf_token": token}, csrf=False)
        assert answer.status_code == 403, path
        assert "read scope only" in answer.text
    assert api.get("/v1/integrations/stripe").json()["failed"] == 1


def test_posts_need_the_csrf_token_and_a_session(api: Api, fake: FakeStripe, clock: Clock) -> None:
    _acme_on_tokens(api, fake)
    report = _failed_report(api, fake)
    admin = signed_in(api)
    path = f"/dashboard/stripe/reports/{report['id']}/retry"
    for data in ({}, {"csrf_token": "forged"}):
        answer = admin.post(path, data, csrf=False)
        assert answer.status_code == 403
        assert "Form expired" in answer.text
    anonymous = Browser.of(api)
    assert anonymous.get("/dashboard/stripe").headers["location"].startswith("/dashboard/login")
    assert anonymous.client.post(path, data={}).status_code == 303
    assert api.get("/v1/integrations/stripe").json()["failed"] == 1


def test_another_workspaces_reports_are_404(
    api: Api, other: Api, fake: FakeStripe, clock: Clock
) -> None:
    _acme_on_tokens(api, fake)
    report = _failed_report(api, fake)
    stranger = signed_in(other)
    page = stranger.get("/dashboard/stripe").text
    assert report["id"] not in page
    assert "acme" not in page
    answer = stranger.post(f"/dashboard/stripe/reports/{report['id']}/retry")
    assert answer.status_code == 404
    assert "acme" not in answer.text
    assert api.get("/v1/integrations/stripe").json()["failed"] == 1


def test_failed_reports_are_paged_like_the_api(api: Api, fake: FakeStripe, clock: Clock) -> None:
    _acme_on_tokens(api, fake)
    events = [
        {
            "id": f"h{n}",
            "type": "tokens",
            "customer": "acme",
            "timestamp": _hours_ago(5 + n),
            "quantity": "1",
        }
        for n in range(29)
    ]
    assert api.post("/v1/events", json={"events": events}).json()["accepted"] == 29
    fake.fail("/v2/billing/meter_event_stream", status=400)  # the one batch of 30 refused
    run_jobs(api)
    failed = api.get("/v1/integrations/stripe/reports", params={"status": "failed"}).json()
    expected = [r["id"] for r in failed["data"]]
    assert len(expected) == 30
    admin = signed_in(api)
    first = admin.get("/dashboard/stripe").text
    shown = re.findall(r'data-report="([^"]+)"', first)
    cursor = re.search(r'href="\?after=([^"]+)">Next page', first)
    assert cursor is not None
    second = admin.get(f"/dashboard/stripe?after={cursor.group(1)}").text
    shown += re.findall(r'data-report="([^"]+)"', second)
    assert (len(re.findall(r"data-report=", first)), shown) == (25, expected)
    assert "Next page" not in second
