"""invoices mode against the fake Stripe: a finalized invoice becomes one Stripe invoice
with the same lines (minor units) and total, through a lost answer and a 500 without a
second invoice; voiding follows; Stripe's webhooks set the payment status, signed by
the ``stripe`` package and refused when the signature is bad."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fake_stripe import FakeStripe, signed
from stripe_support import connect, mapped_customer, reports

from jobs_support import at, frozen, run_jobs
from support import Api, assert_problem

SECRET = "whsec_test0123456789abcdef"


def billed(api: Api, fake: FakeStripe, external_id: str = "acme") -> str:
    """A customer on a 49.00 plan with 10 scans free then 0.05, 40 scans in October."""
    if api.get("/v1/meters/scan").status_code == 404:
        meter = {"key": "scan", "event_type": "scan", "aggregation": "count"}
        assert api.post("/v1/meters", json=meter).status_code == 201
        price = {"model": "per_unit", "unit_price": "0.05"}
        plan = {
            "key": "pro",
            "name": "Pro",
            "currency": "USD",
            "base_fee": "49.00",
            "features": {"scan": {"included": "10", "price": price}},
        }
        assert api.post("/v1/plans", json=plan).status_code == 201
    stripe_id = mapped_customer(api, fake, external_id)
    sub = {"customer": external_id, "plan": "pro", "start_at": "2026-10-01T00:00:00Z"}
    assert api.post("/v1/subscriptions", json=sub).status_code == 201
    events = [
        {
            "id": f"{external_id}-{i}",
            "type": "scan",
            "customer": external_id,
            "timestamp": "2026-10-10T10:00:00Z",
        }
        for i in range(40)
    ]
    assert api.post("/v1/events", json={"events": events}).json()["accepted"] == 40
    return stripe_id


def webhook(api: Api, payload: dict[str, Any], secret: str = SECRET) -> Any:
    body, headers = signed(payload, secret)
    return api.client.post("/v1/integrations/stripe/webhook", content=body, headers=headers)


def test_a_finalized_invoice_becomes_one_stripe_invoice_through_failures(
    api: Api, fake: FakeStripe
) -> None:
    with frozen("2026-10-20T00:00:00") as clock:
        stripe_id = billed(api, fake)
        connect(api, fake, "invoices", webhook_secret=SECRET)
        fake.fail("/v1/invoices", kind="drop_after")  # Stripe made it; the answer is lost
        fake.fail("/v1/invoiceitems", status=500)  # then a 500 on the first item
        clock.set(at("2026-11-01T00:00:05"))
        for _ in range(3):  # one failure per run, retried a few seconds later
            run_jobs(api)
            clock.set(clock.now + timedelta(seconds=10))
        (invoice,) = api.get("/v1/invoices").json()["data"]
        assert (invoice["status"], invoice["total"]) == ("finalized", "50.50")
        assert len(fake.invoices) == 1
        (twin,) = fake.invoices.values()
        assert twin["customer"] == stripe_id
        assert (twin["status"], twin["currency"], twin["total"]) == ("open", "usd", 5050)
        amounts = [item["amount"] for item in twin["lines"]["data"]]
        assert amounts == [4900, 150]  # the base fee, then 30 billable scans at 0.05
        assert twin["metadata"]["meterline_invoice"] == invoice["id"]
        assert twin["metadata"]["meterline_number"] == "INV-000001"
        read = api.get(f"/v1/invoices/{invoice['id']}").json()
        assert (read["stripe_invoice_id"], read["stripe_status"], read["payment_status"]) == (
            twin["id"],
            "open",
            "unpaid",
        )
        (report,) = reports(api)
        assert (report["kind"], report["status"], report["stripe_invoice_id"]) == (
            "invoice",
            "sent",
            twin["id"],
        )
        assert [a["status_code"] for a in report["attempts"]] == [None, 500, 200]
        status = api.get("/v1/integrations/stripe").json()
        assert (status["mode"], status["pending"], status["lag_seconds"]) == ("invoices", 0, 0)

        # Stripe's webhooks: paid, and a bad signature that changes nothing.
        paid = fake.snapshot_event("invoice.paid", {**twin, "status": "paid"})
        r = webhook(api, paid, secret="whsec_not_the_one_0000")
        assert_problem(r, 400, "invalid_signature")
        assert api.get(f"/v1/invoices/{invoice['id']}").json()["payment_status"] == "unpaid"
        r = api.client.post("/v1/integrations/stripe/webhook", json=paid)  # unsigned
        assert_problem(r, 400, "invalid_signature")
        r = webhook(api, paid)
        assert r.status_code == 200, r.text
        assert r.json() == {"received": True, "type": "invoice.paid", "handled": True}
        read = api.get(f"/v1/invoices/{invoice['id']}").json()
        assert (read["payment_status"], read["stripe_status"]) == ("paid", "paid")
        failed = fake.snapshot_event("invoice.payment_failed", {**twin, "status": "open"})
        assert webhook(api, failed).status_code == 200
        assert api.get(f"/v1/invoices/{invoice['id']}").json()["payment_status"] == "failed"
        other = fake.snapshot_event("customer.updated", {"id": stripe_id})
        assert webhook(api, other).json()["handled"] is False


def test_voiding_in_meterline_voids_in_stripe(api: Api, fake: FakeStripe) -> None:
    with frozen("2026-10-20T00:00:00") as clock:
        billed(api, fake)
        connect(api, fake, "invoices")
        clock.set(at("2026-11-01T00:00:05"))
        run_jobs(api)
        (invoice,) = api.get("/v1/invoices").json()["data"]
        assert api.post(f"/v1/invoices/{invoice['id']}/void").status_code == 200
        run_jobs(api)
        (twin,) = fake.invoices.values()
        assert twin["status"] == "void"
        read = api.get(f"/v1/invoices/{invoice['id']}").json()
        assert (read["status"], read["stripe_status"]) == ("void", "void")
        assert sum(1 for path in fake.paths() if path.endswith("/void")) == 1


def test_a_customer_without_stripe_id_is_skipped_until_mapped(api: Api, fake: FakeStripe) -> None:
    with frozen("2026-10-20T00:00:00") as clock:
        acme = billed(api, fake)
        assert api.post("/v1/customers", json={"external_id": "solo"}).status_code == 201
        sub = {"customer": "solo", "plan": "pro", "start_at": "2026-10-01T00:00:00Z"}
        assert api.post("/v1/subscriptions", json=sub).status_code == 201
        connect(api, fake, "invoices")
        clock.set(at("2026-11-01T00:00:05"))
        run_jobs(api)
        (skipped,) = reports(api, status="failed")
        assert skipped["customer"] == "solo"
        assert skipped["last_error"] == "The customer has no stripe_customer_id."
        assert len(fake.invoices) == 1  # acme's
        stripe_id = fake.customer("solo")
        mapping = {"stripe_customer_id": stripe_id}
        assert api.patch("/v1/customers/solo", json=mapping).status_code == 200
        clock.set(clock.now + timedelta(hours=6))  # failed reports are tried again
        run_jobs(api)
        assert [r["status"] for r in reports(api, customer="solo")] == ["sent"]
        owners = sorted(i["customer"] for i in fake.invoices.values())
        assert owners == sorted([stripe_id, acme])


def test_meterline_invoices_are_not_sent_in_meter_events_mode(api: Api, fake: FakeStripe) -> None:
    with frozen("2026-10-20T00:00:00") as clock:
        billed(api, fake)
        connect(api, fake, "meter_events")
        clock.set(at("2026-11-01T00:00:05"))
        run_jobs(api)
        assert fake.invoices == {}
        assert [r["kind"] for r in reports(api)] == []
