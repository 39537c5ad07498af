"""meter_events mode against the fake Stripe: each closed hour's usage as one meter
event per mapped customer and meter, late events as deltas, fractions carried, a 429
storm and 10,000 events over three days arriving exactly once, on both databases."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from decimal import Decimal

from fake_stripe import FakeStripe
from stripe_support import (
    acme_on_tokens,
    connect,
    mapped_customer,
    mapped_meter,
    reports,
    send,
    tokens,
)

from jobs_support import at, frozen, run_jobs
from support import Api, assert_problem


def test_closed_hours_go_once_late_events_as_deltas_fractions_carried(
    api: Api, fake: FakeStripe
) -> None:
    with frozen("2026-11-20T00:30:00") as clock:
        cus = acme_on_tokens(api, fake)
        send(
            api,
            [
                tokens("acme", "2026-11-19T10:05:00", "2.5", 1),
                tokens("acme", "2026-11-19T10:40:00", "1.2", 2),  # hour 10: 3.7
                tokens("acme", "2026-11-19T11:10:00", "0.5", 3),  # hour 11: 0.5 (4.2 in all)
                tokens("acme", "2026-11-19T23:50:00", "7", 4),  # not closed: 60 min delay
            ],
        )
        run_jobs(api)
        assert fake.total(cus, "tokens") == 4  # 4.2 rounded down, the 0.2 carried
        sent = sorted(reports(api), key=lambda r: r["hour_start"])
        assert [(r["hour_start"][11:13], r["value"], r["revision"], r["status"]) for r in sent] == [
            ("10", 3, 1, "sent"),
            ("11", 1, 1, "sent"),
        ]
        assert all(r["identifier"].endswith("_r1") for r in sent)
        assert {e.via for e in fake.live_events()} == {"v1"}  # few events: v1 meter events
        # A late event in a reported hour: one delta, a new revision, never the total again.
        send(api, [tokens("acme", "2026-11-19T10:50:00", "0.9", 5)])  # 5.1 in all
        clock.set(at("2026-11-20T01:30:00"))  # hour 23 closes too (+7 → 12.1)
        run_jobs(api)
        assert fake.total(cus, "tokens") == 12
        late = [r for r in reports(api) if r["revision"] == 2]
        assert [(r["hour_start"][11:13], r["value"]) for r in late] == [("10", 1)]
        assert set(fake.accepted.values()) == {1}
        assert sum(fake.presented.values()) == 4
        status = api.get("/v1/integrations/stripe").json()
        assert (status["pending"], status["failed"], status["excess"]) == (0, 0, 0)
        assert status["last_reported_at"].startswith("2026-11-20T01:30")
        assert status["aggregated_through"].startswith("2026-11-20T00:00")
        assert status["lag_seconds"] == 5400  # 00:00 → 01:30: the hour and its delay
        # Nothing new: a run sends nothing.
        clock.set(at("2026-11-20T02:30:00"))
        run_jobs(api)
        assert sum(fake.presented.values()) == 4


def test_a_429_storm_delivers_everything_once_in_order(api: Api, fake: FakeStripe) -> None:
    with frozen("2026-11-20T12:00:00") as clock:
        cus = acme_on_tokens(api, fake)
        events = [
            tokens("acme", (at("2026-11-19T00:10:00") + timedelta(hours=h)).isoformat(), "3", h)
            for h in range(30)
        ]
        send(api, events)
        fake.fail("/v2/billing/meter_event_stream", status=429, retry_after=3, times=4)
        fake.fail("/v2/billing/meter_event_session", status=503, times=1)
        waits = []
        while fake.total(cus, "tokens") < 90:
            assert len(waits) < 10
            run_jobs(api)
            queue = reports(api)
            assert {r["status"] for r in queue} in ({"pending"}, {"sent"})  # all or nothing
            if queue[0]["status"] == "pending":  # the whole queue waits for its head
                due = min(at(r["next_attempt_at"].replace("Z", "+00:00")) for r in queue)
                waits.append((due - clock.now).total_seconds())
                clock.set(due)
        # A 503 then four 429s: 2 s doubling (jittered), never sooner than Retry-After.
        assert len(waits) == 5
        assert 2 <= waits[0] <= 2.4
        assert all(w >= 3 for w in waits[1:])
        assert 32 <= waits[-1] <= 38.4  # the fifth failure
        assert fake.total(cus, "tokens") == 90
        assert set(fake.accepted.values()) == {1}
        assert len(fake.accepted) == 30
        assert {e.via for e in fake.live_events()} == {"v2"}
        one = reports(api)[0]
        codes = [a["status_code"] for a in one["attempts"]]
        assert codes == [503, 429, 429, 429, 429, 200]
        assert all(a["error"].startswith("v2 stream") for a in one["attempts"])


def test_ten_thousand_events_over_three_days_match_per_customer(api: Api, fake: FakeStripe) -> None:
    rng = random.Random(15)
    with frozen("2026-11-20T06:00:00"):
        mapped_meter(api, fake, "tokens")
        mapped_meter(api, fake, "calls", aggregation="count")
        ids = {f"c{i}": mapped_customer(api, fake, f"c{i}") for i in range(8)}
        # A member's usage goes to its organization's Stripe customer.
        assert (
            api.post("/v1/customers", json={"external_id": "m1", "parent": "c0"}).status_code == 201
        )
        plan = {
            "key": "std",
            "name": "Std",
            "currency": "USD",
            "features": {"tokens": {}, "calls": {}},
        }
        assert api.post("/v1/plans", json=plan).status_code == 201
        for customer in ids:
            sub = {"customer": customer, "plan": "std", "start_at": "2026-11-01T00:00:00Z"}
            assert api.post("/v1/subscriptions", json=sub).status_code == 201
        connect(api, fake)
        start = at("2026-11-17T04:00:00")
        events = []
        for n in range(10_000):
            who = rng.choice([*ids, "m1"])
            kind = rng.choice(["tokens", "calls"])
            when = start + timedelta(seconds=rng.randrange(3 * 86400))
            quantity = str(Decimal(rng.randrange(1, 5000)) / 100) if kind == "tokens" else "1"
            events.append(
                {
                    "id": f"e{n}",
                    "type": kind,
                    "customer": who,
                    "timestamp": when.isoformat(),
                    "quantity": quantity,
                }
            )
        send(api, events)
        r = api.post("/v1/integrations/stripe/sync")
        assert r.status_code == 202, r.text
        assert r.json() == {"queued": True, "mode": "meter_events"}
        run_jobs(api)
        # Stripe's meter event summaries for the billing period = the period's usage in
        # GET /v1/customers/{id}/usage, rounded down, for every customer and meter.
        stripe = fake.client()
        meters = {m.event_name: m.id for m in stripe.v1.billing.meters.list().data}
        for customer, stripe_id in ids.items():
            usage = api.get(f"/v1/customers/{customer}/usage").json()
            period = usage["period"]
            for feature in usage["features"]:
                window = {
                    "customer": stripe_id,
                    "start_time": int(at(period["start"].replace("Z", "+00:00")).timestamp()),
                    "end_time": int(at(period["end"].replace("Z", "+00:00")).timestamp()),
                }
                (summary,) = stripe.v1.billing.meters.event_summaries.list(
                    meters[feature["feature"]], window
                ).data
                assert summary.aggregated_value == int(Decimal(feature["used"])), customer
                assert summary.aggregated_value > 0
        assert set(fake.accepted.values()) == {1}
        assert {e.via for e in fake.live_events()} == {"v2"}  # many: the meter event stream
        assert fake.errors == []
        assert api.get("/v1/integrations/stripe").json()["pending"] == 0


def test_unmapped_customers_and_meters_are_skipped_and_shown(api: Api, fake: FakeStripe) -> None:
    with frozen("2026-11-20T12:00:00"):
        mapped_meter(api, fake, "tokens")
        assert (
            api.post(
                "/v1/meters", json={"key": "peak", "event_type": "peak", "aggregation": "max"}
            ).status_code
            == 201
        )
        assert (
            api.post(
                "/v1/meters", json={"key": "calls", "event_type": "calls", "aggregation": "count"}
            ).status_code
            == 201
        )
        cus = mapped_customer(api, fake, "acme")
        assert api.post("/v1/customers", json={"external_id": "solo"}).status_code == 201
        status = connect(api, fake)
        assert status["unmapped"] == {
            "customers": 1,
            "customer_examples": ["solo"],
            "meters": ["calls"],
        }
        send(
            api,
            [
                tokens("acme", "2026-11-20T08:00:00", "5", 1),
                tokens("solo", "2026-11-20T08:00:00", "9", 2),
            ],
        )
        run_jobs(api)
        assert fake.total(cus, "tokens") == 5
        assert [r["customer"] for r in reports(api)] == ["acme"]


def test_connect_status_and_disconnect(api: Api, fake: FakeStripe) -> None:
    assert api.get("/v1/integrations/stripe").json()["status"] == "not_connected"
    assert_problem(api.post("/v1/integrations/stripe/sync"), 409, "stripe_not_connected")
    status = connect(api, fake, webhook_secret="whsec_abcdefghijkl", report_delay_minutes=15)
    assert status["status"] == "connected"
    assert status["secret_key_last4"] == fake.secret_key[-4:]
    assert fake.secret_key not in api.get("/v1/integrations/stripe").text
    assert (status["mode"], status["report_delay_minutes"], status["webhook_secret_set"]) == (
        "meter_events",
        15,
        True,
    )
    bad = api.request(
        "PUT",
        "/v1/integrations/stripe",
        json={"secret_key": "pk_test_nope12345", "mode": "meter_events"},
    )
    assert_problem(bad, 422, "validation_error")
    assert api.delete("/v1/integrations/stripe").status_code == 204
    after = api.get("/v1/integrations/stripe").json()
    assert (after["status"], after["secret_key_last4"], after["mode"]) == (
        "not_connected",
        None,
        None,
    )
    assert_problem(api.delete("/v1/integrations/stripe"), 409, "stripe_not_connected")
    assert (
        api.get("/v1/integrations/stripe", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    reader = api.new_key("read")
    assert_problem(reader.get("/v1/integrations/stripe"), 403, "insufficient_scope")


def test_identifiers_are_deduplicated_by_stripe_when_an_answer_is_lost(
    api: Api, fake: FakeStripe
) -> None:
    with frozen("2026-11-20T12:00:00") as clock:
        cus = acme_on_tokens(api, fake)
        send(api, [tokens("acme", "2026-11-20T08:00:00", "5", 1)])
        fake.fail("/v1/billing/meter_events", kind="drop_after")  # Stripe took it; no answer
        run_jobs(api)
        (report,) = reports(api)
        assert report["status"] == "pending"
        clock.set(clock.now + timedelta(seconds=10))
        run_jobs(api)
        (report,) = reports(api)
        assert report["status"] == "sent"
        assert fake.total(cus, "tokens") == 5
        assert (fake.presented[report["identifier"]], fake.accepted[report["identifier"]]) == (2, 1)
        assert report["attempts"][0]["status_code"] is None
        assert report["attempts"][1]["error"].startswith("already at Stripe")


def test_a_client_error_fails_at_once_and_retry_sends_it(api: Api, fake: FakeStripe) -> None:
    with frozen("2026-11-20T12:00:00"):
        cus = acme_on_tokens(api, fake)
        send(api, [tokens("acme", "2026-11-20T08:00:00", "5", 1)])
        fake.fail("/v1/billing/meter_events", status=400)
        run_jobs(api)
        (report,) = reports(api, status="failed")
        assert report["last_error"] == "Injected failure."
        status = api.get("/v1/integrations/stripe").json()
        assert (status["failed"], status["pending"]) == (1, 0)
        assert "Injected failure." in status["last_error"]
        r = api.post(f"/v1/integrations/stripe/reports/{report['id']}/retry")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "pending"
        run_jobs(api)
        assert fake.total(cus, "tokens") == 5
        assert [a["status_code"] for a in reports(api)[0]["attempts"]] == [400, 200]
        assert_problem(api.post("/v1/integrations/stripe/reports/srp_nope/retry"), 404, "not_found")
        assert Counter(r["status"] for r in reports(api)) == {"sent": 1}


def test_stream_sessions_are_renewed_before_they_expire_and_when_stripe_says_so(
    api: Api, fake: FakeStripe
) -> None:
    with frozen("2026-11-20T12:00:00") as clock:
        cus = acme_on_tokens(api, fake)

        def a_day_of_usage(day: str, tag: str) -> None:
            send(api, [tokens("acme", f"{day}T{h:02d}:10:00", "1", f"{tag}{h}") for h in range(24)])

        a_day_of_usage("2026-11-18", "a")
        run_jobs(api)
        assert fake.state.sessions_created == 1
        clock.set(at("2026-11-20T12:14:30"))  # 30 s left of its 15 minutes: renewed first
        a_day_of_usage("2026-11-17", "b")
        assert api.post("/v1/integrations/stripe/sync").status_code == 202
        run_jobs(api)
        assert fake.state.sessions_created == 2
        fake.expire_sessions()  # Stripe ends it early: 401, renewed once, sent
        a_day_of_usage("2026-11-16", "c")
        assert api.post("/v1/integrations/stripe/sync").status_code == 202
        run_jobs(api)
        assert fake.state.sessions_created == 3
        assert fake.total(cus, "tokens") == 72
        assert {e.via for e in fake.live_events()} == {"v2"}
        assert all(r["attempts"][-1]["status_code"] == 200 for r in reports(api))
