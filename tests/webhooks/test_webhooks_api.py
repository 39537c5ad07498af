"""Webhooks end to end with a real HTTP receiver on 127.0.0.1: a threshold crossed once
gives one signed message (verified by the `standardwebhooks` package), a receiver that
fails twice gets it on the third try as the clock moves, the delivery log keeps every
attempt, the outbox survives a restart, failing endpoints are disabled, and private
addresses are refused unless allowed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from jobs_support import at, frozen, run_jobs
from limits_support import meter
from meterline.app import create_app
from meterline.config import Settings
from meterline.webhooks import verify
from support import Api, assert_problem
from webhooks_support import Receiver, receiving


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


def endpoint(api: Api, url: str, *events: str) -> dict[str, Any]:
    r = api.post("/v1/webhook-endpoints", json={"url": url, "events": list(events)})
    assert r.status_code == 201, r.text
    assert r.json()["secret"].startswith("whsec_")
    body: dict[str, Any] = r.json()
    return body


def soft_limited(api: Api) -> None:
    meter(api, "scan")
    limit = {"window": "month", "max": "10", "enforcement": "soft", "alert_at": ["0.5", "1.0"]}
    plan = {"key": "p", "name": "P", "currency": "USD", "features": {"scan": {"limits": [limit]}}}
    assert api.post("/v1/plans", json=plan).status_code == 201
    assert api.post("/v1/customers", json={"external_id": "acme"}).status_code == 201
    sub = {"customer": "acme", "plan": "p", "start_at": "2026-01-01T00:00:00Z"}
    assert api.post("/v1/subscriptions", json=sub).status_code == 201


def scans(api: Api, first: int, count: int) -> None:
    events = [
        {"id": f"s{i}", "type": "scan", "customer": "acme"} for i in range(first, first + count)
    ]
    assert api.post("/v1/events", json={"events": events}).json()["accepted"] == count


def test_a_threshold_crossed_sends_one_signed_message(api: Api, receiver: Receiver) -> None:
    hook = endpoint(api, receiver.url, "usage.threshold_reached", "usage.limit_reached")
    soft_limited(api)
    # The clock starts at the real time: the reference library checks timestamps.
    with frozen(datetime.now(UTC).isoformat()) as clock:

        def after_the_delay() -> None:  # events' alerts are evaluated 2 s after they land
            clock.set(clock.now + timedelta(seconds=3))
            run_jobs(api)

        scans(api, 0, 3)
        scans(api, 3, 3)  # 60 % of the month's 10
        after_the_delay()
        scans(api, 6, 1)  # 70 %: the 50 % threshold is not raised again
        after_the_delay()
        assert len(receiver.received) == 1
        headers, body = receiver.received[0]
        message = Webhook(hook["secret"]).verify(body, headers)  # the standard library's
        assert message["type"] == "usage.threshold_reached"
        data = message["data"]
        assert {k: data[k] for k in ("customer", "feature", "window", "max", "share")} == {
            "customer": "acme",
            "feature": "scan",
            "window": "month",
            "max": "10",
            "share": "0.5",
        }
        assert data["used"] == "6"
        alerts = api.get("/v1/alerts", params={"customer": "acme"}).json()["data"]
        assert [(a["type"], a["threshold"], a["window"]) for a in alerts] == [
            ("usage.threshold_reached", "0.5", "month")
        ]
        scans(api, 7, 3)  # 100 %: the limit
        after_the_delay()
    kinds = [verify(hook["secret"], h, b, now=h_ts(h))["type"] for h, b in receiver.received]
    assert kinds == ["usage.threshold_reached", "usage.limit_reached"]
    limit = api.get("/v1/alerts", params={"type": "usage.limit_reached"}).json()["data"]
    assert [a["customer"] for a in limit] == ["acme"]


def h_ts(headers: dict[str, str]) -> float:
    return float(headers["webhook-timestamp"])


def test_a_failing_receiver_gets_it_on_the_third_try(api: Api, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    with frozen("2026-11-21T00:00:00") as clock:
        hook = endpoint(api, receiver.url, "credits.granted")
        api.post("/v1/customers", json={"external_id": "acme"})
        grant = {"amount": "100", "source": "purchase"}
        assert api.post("/v1/customers/acme/credits/grants", json=grant).status_code == 201
        run_jobs(api)
        log = api.get(f"/v1/webhook-endpoints/{hook['id']}/deliveries").json()["data"]
        assert [(d["status"], len(d["attempts"])) for d in log] == [("pending", 1)]
        retry_at = at(log[0]["next_attempt_at"].replace("Z", "+00:00"))
        assert timedelta(seconds=5) <= retry_at - at("2026-11-21T00:00:00") <= timedelta(seconds=6)
        run_jobs(api)  # not yet due
        assert len(receiver.received) == 1
        clock.set(at("2026-11-21T00:00:10"))
        run_jobs(api)
        clock.set(at("2026-11-21T00:07:00"))  # past the 5-minute (+ jitter) wait
        run_jobs(api)
        (delivery,) = api.get(f"/v1/webhook-endpoints/{hook['id']}/deliveries").json()["data"]
    assert delivery["status"] == "succeeded"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 200]
    assert [a["error"] for a in delivery["attempts"]] == ["HTTP 500", "HTTP 503", None]
    assert all(a["latency_ms"] >= 0 for a in delivery["attempts"])
    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert ids == {delivery["message_id"]}  # the same message each time
    assert len(set(receiver.bodies())) == 1


def test_the_outbox_survives_a_restart(api: Api, receiver: Receiver, settings: Settings) -> None:
    endpoint(api, receiver.url, "subscription.created")
    meter(api, "scan")
    api.post("/v1/plans", json={"key": "p", "name": "P", "currency": "USD"})
    api.post("/v1/customers", json={"external_id": "acme"})
    assert api.post("/v1/subscriptions", json={"customer": "acme", "plan": "p"}).status_code == 201
    # The process stops before any job runs; a new one on the same database delivers.
    with TestClient(create_app(settings)) as fresh:
        run_jobs(api.with_client(fresh))
    ((_, body),) = receiver.received
    assert b'"type":"subscription.created"' in body
    assert b'"customer":"acme"' in body


def test_retry_disable_rotate_and_delete(api: Api, receiver: Receiver) -> None:
    receiver.statuses = [500] * 20
    with frozen("2026-11-01T00:00:00") as clock:
        hook = endpoint(api, receiver.url)  # every type
        api.post("/v1/customers", json={"external_id": "acme"})
        api.post("/v1/customers/acme/credits/grants", json={"amount": "5"})
        run_jobs(api)
        (delivery,) = api.get(f"/v1/webhook-endpoints/{hook['id']}/deliveries").json()["data"]
        # A manual retry sends it again now.
        r = api.post(f"/v1/webhook-deliveries/{delivery['id']}/retry")
        assert (r.status_code, r.json()["status"]) == (200, "pending")
        run_jobs(api)
        assert len(receiver.received) == 2
        # Still failing five days on: the endpoint is disabled and says why.
        clock.set(at("2026-11-06T00:00:01"))
        api.post("/v1/customers/acme/credits/grants", json={"amount": "5"})
        run_jobs(api)
        found = api.get(f"/v1/webhook-endpoints/{hook['id']}").json()
        assert found["enabled"] is False
        assert "every delivery has failed since 2026-11-01" in found["disabled_reason"]
        sent = len(receiver.received)
        api.post("/v1/customers/acme/credits/grants", json={"amount": "5"})
        run_jobs(api)
        assert len(receiver.received) == sent  # nothing goes to a disabled endpoint
        # Re-enabled and rotated: the next message is signed by the old and new secrets.
        receiver.statuses = []
        assert (
            api.patch(f"/v1/webhook-endpoints/{hook['id']}", json={"enabled": True}).json()[
                "failing_since"
            ]
            is None
        )
        rotated = api.post(f"/v1/webhook-endpoints/{hook['id']}/rotate-secret").json()
        assert rotated["secret"] != hook["secret"]
        assert api.get(f"/v1/webhook-endpoints/{hook['id']}").json()["secret"] is None
        clock.set(at("2026-11-06T00:01:00"))
        api.post("/v1/customers/acme/credits/grants", json={"amount": "5"})
        run_jobs(api)
        headers, body = receiver.received[-1]
        now_ts = int(at("2026-11-06T00:01:00").timestamp())
        assert headers["webhook-timestamp"] == str(now_ts)
        assert len(headers["webhook-signature"].split(" ")) == 2
        for secret in (hook["secret"], rotated["secret"]):
            assert verify(secret, headers, body, now=now_ts)["type"] == "credits.granted"
        assert api.delete(f"/v1/webhook-endpoints/{hook['id']}").status_code == 204
        assert_problem(api.get(f"/v1/webhook-endpoints/{hook['id']}"), 404, "not_found")


def test_private_addresses_are_refused_unless_allowed(settings: Settings, api: Api) -> None:
    strict = settings.model_copy(update={"webhooks_allow_private": False})
    with TestClient(create_app(strict)) as client:
        guarded = api.with_client(client)
        for url in ("http://127.0.0.1:8080/x", "http://10.1.2.3/x", "http://169.254.169.254/x"):
            r = guarded.post("/v1/webhook-endpoints", json={"url": url})
            body = assert_problem(r, 422, "validation_error")
            assert body["errors"][0]["code"] == "webhook_url_not_allowed"
        r = guarded.post("/v1/webhook-endpoints", json={"url": "ftp://example.com/x"})
        assert assert_problem(r, 422, "validation_error")["errors"][0]["code"] == "invalid_url"
        assert guarded.get("/v1/webhook-endpoints").json()["data"] == []


def test_consumes_raise_alerts_as_they_cross(api: Api, receiver: Receiver) -> None:
    hook = endpoint(api, receiver.url, "usage.threshold_reached", "usage.limit_reached")
    soft_limited(api)
    for i in range(12):  # 50 % at the 5th, 100 % at the 10th, then past the soft limit
        body = {"customer": "acme", "feature": "scan", "consume": True, "id": f"c{i}"}
        assert api.post("/v1/check", json=body).json()["allowed"] is True
    # Raised in the consumes' own transactions: no job needed to see them.
    alerts = api.get("/v1/alerts").json()["data"]
    assert [(a["type"], a["data"]["used"]) for a in reversed(alerts)] == [
        ("usage.threshold_reached", "5"),
        ("usage.limit_reached", "10"),
    ]
    run_jobs(api)  # delivers both; evaluating again raises nothing new
    kinds = [Webhook(hook["secret"]).verify(b, h)["type"] for h, b in receiver.received]
    assert sorted(kinds) == ["usage.limit_reached", "usage.threshold_reached"]
    assert len(api.get("/v1/alerts").json()["data"]) == 2


def test_the_next_window_alerts_again(api: Api) -> None:
    meter(api, "scan")
    limit = {"window": "day", "max": "2", "alert_at": ["1.0"]}
    plan = {"key": "p", "name": "P", "currency": "USD", "features": {"scan": {"limits": [limit]}}}
    assert api.post("/v1/plans", json=plan).status_code == 201
    api.post("/v1/customers", json={"external_id": "acme"})
    sub = {"customer": "acme", "plan": "p", "start_at": "2026-01-01T00:00:00Z"}
    assert api.post("/v1/subscriptions", json=sub).status_code == 201
    with frozen("2026-11-20T10:00:00") as clock:
        for day in ("2026-11-20T10:00:00", "2026-11-21T10:00:00"):
            clock.set(at(day))
            for i in range(3):  # the third is denied: a hard limit
                body = {"customer": "acme", "feature": "scan", "consume": True, "id": f"{day}{i}"}
                api.post("/v1/check", json=body)
        alerts = api.get("/v1/alerts").json()["data"]
    assert [(a["type"], a["window_start"]) for a in reversed(alerts)] == [
        ("usage.limit_reached", "2026-11-20T00:00:00Z"),
        ("usage.limit_reached", "2026-11-21T00:00:00Z"),
    ]
