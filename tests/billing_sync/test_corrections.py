"""When usage goes down after it was reported (issue 14's voids do this), Stripe's meter
event adjustments cancel within 24 hours and the rest goes again; later decreases show as
excess, never as a negative value. Reconciliation finds a difference planted in the fake
and ``repair`` closes it. Stripe's error reports are recorded on the reports they name."""

from __future__ import annotations

from fake_stripe import FakeStripe, signed
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

SECRET = "whsec_test0123456789abcdef"


def void(api: Api, event_id: str) -> None:
    """A correction: the event stops counting (its hour's usage goes down)."""
    r = api.post(f"/v1/events/{event_id}/void", json={"reason": "refund"})
    assert r.status_code == 200, r.text


def test_a_decrease_within_24_hours_is_cancelled_and_sent_again(api: Api, fake: FakeStripe) -> None:
    with frozen("2026-11-20T12:00:00") as clock:
        cus = acme_on_tokens(api, fake)
        send(
            api,
            [
                tokens("acme", "2026-11-20T08:00:00", "2", "a"),
                tokens("acme", "2026-11-20T08:01:00", "4", "b"),
                tokens("acme", "2026-11-20T08:02:00", "3", "c"),
            ],
        )
        run_jobs(api)
        assert fake.total(cus, "tokens") == 9
        void(api, "acme-c")
        clock.set(at("2026-11-20T13:00:00"))
        run_jobs(api)
        assert fake.total(cus, "tokens") == 6
        kinds = sorted((r["kind"], r["value"], r["status"]) for r in reports(api))
        assert kinds == [
            ("meter_event", 6, "sent"),
            ("meter_event", 9, "sent"),
            ("meter_event_cancel", 9, "sent"),
        ]
        cancelled = next(r for r in reports(api) if r["value"] == 9 and r["kind"] == "meter_event")
        assert cancelled["cancelled_by"] is not None
        assert [e.value for e in fake.live_events()] == [6]  # never a negative value
        # More than a day later, Stripe cancels nothing: the decrease is excess.
        clock.set(at("2026-11-21T14:00:00"))
        void(api, "acme-b")
        r = api.post("/v1/integrations/stripe/sync")
        assert r.status_code == 202
        run_jobs(api)
        assert fake.total(cus, "tokens") == 6
        status = api.get("/v1/integrations/stripe").json()
        assert status["excess"] == 4
        found = api.post(
            "/v1/integrations/stripe/reconcile",
            json={"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"},
        )
        assert found.status_code == 200, found.text
        (row,) = found.json()["differences"]
        assert (row["meterline"], row["stripe"], row["reported"], row["difference"]) == (
            "2",
            6,
            6,
            0,
        )
        assert row["problem"].startswith("Stripe holds more than Meterline measured")
        # Later usage absorbs it before anything more is sent.
        send(api, [tokens("acme", "2026-11-21T10:00:00", "5", 2)])
        clock.set(at("2026-11-21T15:00:00"))
        run_jobs(api)
        assert fake.total(cus, "tokens") == 7  # 2 + 5 measured: Stripe catches up at 7
        assert api.get("/v1/integrations/stripe").json()["excess"] == 0


def test_reconciliation_finds_a_planted_difference_and_repair_closes_it(
    api: Api, fake: FakeStripe
) -> None:
    with frozen("2026-11-20T12:00:00") as clock:
        cus = acme_on_tokens(api, fake)
        send(api, [tokens("acme", f"2026-11-20T0{h}:30:00", "4.5", h) for h in range(1, 6)])
        run_jobs(api)
        assert fake.total(cus, "tokens") == 22  # 22.5 rounded down
        body = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-20T12:00:00Z"}
        clean = api.post("/v1/integrations/stripe/reconcile", json=body).json()
        assert (clean["checked"], clean["differences"]) == (1, [])
        lost = next(r for r in reports(api) if r["hour_start"].startswith("2026-11-20T03"))
        fake.lose(lost["identifier"])  # Stripe forgets one hour's event
        found = api.post("/v1/integrations/stripe/reconcile", json=body).json()
        (row,) = found["differences"]
        assert (row["customer"], row["meter"], row["stripe"], row["reported"]) == (
            "acme",
            "tokens",
            22 - lost["value"],
            22,
        )
        assert row["hours"] == [
            {"hour_start": "2026-11-20T03:00:00Z", "stripe": 0, "reported": lost["value"]}
        ]
        assert (found["repaired"], found["queued"]) == (False, 0)
        repaired = api.post("/v1/integrations/stripe/reconcile", json={**body, "repair": True})
        assert (repaired.json()["repaired"], repaired.json()["queued"]) == (True, 1)
        run_jobs(api)
        assert fake.total(cus, "tokens") == 22
        again = next(r for r in reports(api) if r["revision"] == 2)
        assert (again["hour_start"], again["value"]) == (lost["hour_start"], lost["value"])
        assert api.post("/v1/integrations/stripe/reconcile", json=body).json()["differences"] == []
        # Ranges are whole hours, in the past.
        bad = api.post(
            "/v1/integrations/stripe/reconcile",
            json={"from": "2026-11-20T00:30:00Z", "to": "2026-11-20T02:00:00Z"},
        )
        assert_problem(bad, 422, "validation_error")
        edge = {"from": "0001-01-01T00:00:00+14:00", "to": "2026-11-20T02:00:00Z"}
        body = assert_problem(
            api.post("/v1/integrations/stripe/reconcile", json=edge), 422, "validation_error"
        )
        assert body["errors"][0]["code"] == "timestamp_out_of_range"  # the one gate for times
        ahead = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}
        assert_problem(
            api.post("/v1/integrations/stripe/reconcile", json=ahead), 422, "validation_error"
        )
        clock.set(clock.now)


def test_an_error_report_is_recorded_on_the_reports_it_names(api: Api, fake: FakeStripe) -> None:
    with frozen("2026-11-20T12:00:00"):
        mapped_meter(api, fake, "tokens")
        mapped_customer(api, fake, "acme")
        body = {"external_id": "ghost", "stripe_customer_id": "cus_unknownToStripe"}
        assert api.post("/v1/customers", json=body).status_code == 201
        connect(api, fake, webhook_secret=SECRET)
        send(api, [tokens("ghost", "2026-11-20T08:00:00", "3", 1)])
        run_jobs(api)
        (report,) = reports(api)
        assert report["status"] == "sent"  # Stripe validates meter events later
        assert fake.errors == [
            {"identifier": report["identifier"], "code": "meter_event_customer_not_found"}
        ]
        thin = fake.error_report("tokens", [report["identifier"]], "No such customer.")
        payload, headers = signed(thin, SECRET)
        r = api.client.post("/v1/integrations/stripe/webhook", content=payload, headers=headers)
        assert r.json() == {
            "received": True,
            "handled": True,
            "type": "v1.billing.meter.error_report_triggered",
        }
        run_jobs(api)  # the event's details are fetched from Stripe
        (report,) = reports(api)
        assert report["status"] == "failed"
        assert report["error_report"] == "meter_event_customer_not_found: No such customer."
        assert any(p.startswith("/v2/core/events/") for p in fake.paths())
