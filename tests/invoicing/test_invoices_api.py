"""Invoices with the clock in hand: periods close into invoices (prorated base fees,
rated usage, totals to the cent), gapless numbers per workspace, grace periods that
absorb late events, late events after finalization, finalize and void, plan changes
and cancellations, and the upcoming invoice."""

from __future__ import annotations

from typing import Any

from jobs_support import at, frozen, run_jobs
from limits_support import meter
from meterline.runtime import runtime_of
from support import Api, assert_problem

OCR = {"included": "50", "price": {"model": "per_unit", "unit_price": "0.05"}}
API_CALLS = {
    "price": {
        "model": "graduated",
        "tiers": [
            {"up_to": "10000", "unit_price": "0"},
            {"up_to": None, "unit_price": "0.001"},
        ],
    }
}


def catalog(api: Api) -> None:
    meter(api, "ocr_scan", unit="scan")
    meter(api, "api_call")
    for key, name, fee in (("pro", "Pro", "50"), ("basic", "Basic", "100"), ("max", "Max", "200")):
        body = {
            "key": key,
            "name": name,
            "currency": "USD",
            "base_fee": fee,
            "features": {"ocr_scan": OCR, "api_call": API_CALLS},
        }
        assert api.post("/v1/plans", json=body).status_code == 201


def subscribe(api: Api, customer: str, plan: str, start: str) -> str:
    r = api.post("/v1/customers", json={"external_id": customer})
    assert r.status_code == 201, r.text
    body = {"customer": customer, "plan": plan, "start_at": start}
    r = api.post("/v1/subscriptions", json=body)
    assert r.status_code == 201, r.text
    sub_id: str = r.json()["id"]
    return sub_id


def send(api: Api, customer: str, kind: str, count: int, when: str, prefix: str = "e") -> None:
    events = [
        {
            "id": f"{prefix}{customer}{kind}{i}",
            "type": kind,
            "customer": customer,
            "timestamp": when,
        }
        for i in range(count)
    ]
    r = api.post("/v1/events", json={"events": events})
    assert r.json()["accepted"] == count, r.text


def invoices(api: Api, **params: Any) -> list[dict[str, Any]]:
    r = api.get("/v1/invoices", params=params)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def lines(invoice: dict[str, Any]) -> list[tuple[str, str | None, str, str]]:
    return [(x["type"], x.get("feature"), x["quantity"], x["amount"]) for x in invoice["lines"]]


def test_first_partial_period_closes_into_the_spec_invoice(api: Api) -> None:
    catalog(api)
    with frozen("2026-08-10T00:00:00") as clock:
        subscribe(api, "org_123", "pro", "2026-08-10T00:00:00Z")
        clock.set(at("2026-08-20T12:00:00"))
        send(api, "org_123", "ocr_scan", 75, "2026-08-10T10:00:00Z")
        usage = api.get("/v1/customers/org_123/usage").json()
        assert usage["period"] == {"start": "2026-08-10T00:00:00Z", "end": "2026-09-01T00:00:00Z"}
        features = {f["feature"]: f for f in usage["features"]}
        assert (features["ocr_scan"]["billable"], features["ocr_scan"]["amount"]) == ("25", "1.25")
        assert features["api_call"]["used"] == "0"  # every plan feature, used or not
        assert (usage["base_fee"], usage["total"]) == ("35.48", "36.73")
        run_jobs(api)
        assert invoices(api) == []  # nothing has ended yet

        clock.set(at("2026-09-01T00:00:01"))
        run_jobs(api)
        (invoice,) = invoices(api, customer="org_123")
        assert (invoice["number"], invoice["status"], invoice["currency"]) == (
            "INV-000001",
            "finalized",
            "USD",
        )
        assert invoice["period"] == {"start": "2026-08-10T00:00:00Z", "end": "2026-09-01T00:00:00Z"}
        assert lines(invoice) == [
            ("base_fee", None, "1", "35.48"),
            ("usage", "ocr_scan", "25", "1.25"),
            ("usage", "api_call", "0", "0.00"),
        ]
        assert invoice["lines"][0]["description"] == "Pro (Aug 10 \N{EN DASH} Sep 1)"
        assert invoice["total"] == "36.73"
        # Running the jobs again changes nothing: one invoice per period.
        run_jobs(api)
        assert len(invoices(api)) == 1
        # September is the upcoming one, whole.
        upcoming = api.get("/v1/customers/org_123/invoices/upcoming").json()
        assert (upcoming["status"], upcoming["id"], upcoming["number"]) == ("upcoming", None, None)
        assert upcoming["period"]["start"] == "2026-09-01T00:00:00Z"
        assert (lines(upcoming)[0], upcoming["total"]) == (
            ("base_fee", None, "1", "50.00"),
            "50.00",
        )


def test_plan_change_mid_month_bills_both_prorated_fees(api: Api) -> None:
    catalog(api)
    with frozen("2027-01-01T00:00:00") as clock:
        sub = subscribe(api, "acme", "basic", "2027-01-01T00:00:00Z")
        clock.set(at("2027-01-15T10:00:00"))
        r = api.post(f"/v1/subscriptions/{sub}/change", json={"plan": "max", "at": "now"})
        assert r.status_code == 200, r.text
        usage = api.get("/v1/customers/acme/usage").json()
        fees = [(f["plan"], f["days"], f["period_days"], f["amount"]) for f in usage["base_fees"]]
        assert fees == [("basic", 14, 31, "45.16"), ("max", 17, 31, "109.68")]
        assert (usage["plan"], usage["base_fee"], usage["total"]) == ("max", "154.84", "154.84")
        clock.set(at("2027-02-01T00:00:00"))
        run_jobs(api)
        (invoice,) = invoices(api)
        assert lines(invoice)[:2] == [
            ("base_fee", None, "1", "45.16"),
            ("base_fee", None, "1", "109.68"),
        ]
        assert invoice["total"] == "154.84"


def test_cancellation_closes_a_last_partial_period_and_ends_the_cycle(api: Api) -> None:
    catalog(api)
    with frozen("2027-01-01T00:00:00") as clock:
        sub = subscribe(api, "acme", "basic", "2027-01-01T00:00:00Z")
        clock.set(at("2027-01-20T09:00:00"))
        send(api, "acme", "ocr_scan", 60, "2027-01-05T00:00:00Z")
        r = api.post(f"/v1/subscriptions/{sub}/cancel", json={"at": "now"})
        assert r.status_code == 200, r.text
        run_jobs(api)
        (invoice,) = invoices(api)
        assert invoice["period"]["end"] == "2027-01-20T09:00:00Z"
        assert lines(invoice)[:2] == [
            ("base_fee", None, "1", "61.29"),
            ("usage", "ocr_scan", "10", "0.50"),
        ]
        clock.set(at("2027-03-01T00:00:00"))
        run_jobs(api)
        assert len(invoices(api)) == 1  # nothing after the end


def test_grace_period_absorbs_late_events_then_finalization_freezes(api: Api) -> None:
    catalog(api)
    assert api.patch("/v1/workspace", json={"invoice_grace_days": 2}).status_code == 200
    with frozen("2026-08-01T00:00:00") as clock:
        subscribe(api, "acme", "pro", "2026-08-01T00:00:00Z")
        clock.set(at("2026-08-05T00:00:00"))
        send(api, "acme", "ocr_scan", 60, "2026-08-05T00:00:00Z")
        clock.set(at("2026-09-01T00:00:00"))
        run_jobs(api)
        (draft,) = invoices(api)
        assert (draft["status"], draft["number"]) == ("draft", None)
        assert draft["finalize_at"] == "2026-09-03T00:00:00Z"
        assert lines(draft)[1] == ("usage", "ocr_scan", "10", "0.50")

        clock.set(at("2026-09-02T00:00:00"))  # a late event, within the grace
        send(api, "acme", "ocr_scan", 4, "2026-08-31T23:00:00Z", prefix="late")
        clock.set(at("2026-09-03T00:00:00"))
        run_jobs(api)
        (final,) = invoices(api)
        assert (final["id"], final["status"], final["number"]) == (
            draft["id"],
            "finalized",
            "INV-000001",
        )
        assert lines(final)[1] == ("usage", "ocr_scan", "14", "0.70")
        assert final["total"] == "50.70"

        clock.set(at("2026-09-04T00:00:00"))  # late again: after finalization
        send(api, "acme", "ocr_scan", 6, "2026-08-30T00:00:00Z", prefix="later")
        again = api.get(f"/v1/invoices/{final['id']}").json()
        assert (lines(again), again["total"]) == (lines(final), "50.70")  # never rewritten
        assert again["late_usage"] == [
            {
                "feature": "ocr_scan",
                "invoiced": "64",
                "used": "70",
                "amount_invoiced": "0.70",
                "amount_now": "1.00",
            }
        ]
        # Usage views count the late events.
        (august,) = api.get("/v1/customers/acme/usage/history").json()["data"]
        assert august["features"][0]["used"] == "70"
        assert august["invoice"] == {
            "id": final["id"],
            "number": "INV-000001",
            "status": "finalized",
            "total": "50.70",
        }


def test_numbers_are_gapless_per_workspace_and_void_keeps_them(api: Api, other: Api) -> None:
    catalog(api)
    catalog(other)
    with frozen("2026-08-01T00:00:00") as clock:
        for name in ("a", "b", "c"):
            subscribe(api, name, "pro", "2026-08-01T00:00:00Z")
        subscribe(other, "z", "pro", "2026-08-01T00:00:00Z")
        clock.set(at("2026-10-01T00:00:00"))
        run_jobs(api)
        numbers = sorted(i["number"] for i in invoices(api))
        assert numbers == [f"INV-{n:06d}" for n in range(1, 7)]  # 3 customers x 2 months
        assert sorted(i["number"] for i in invoices(other)) == ["INV-000001", "INV-000002"]

        voided = invoices(api)[0]
        r = api.post(f"/v1/invoices/{voided['id']}/void")
        assert (r.status_code, r.json()["status"], r.json()["number"]) == (
            200,
            "void",
            voided["number"],
        )
        assert_problem(api.post(f"/v1/invoices/{voided['id']}/void"), 409, "invoice_void")
        assert_problem(api.post(f"/v1/invoices/{voided['id']}/finalize"), 409, "invoice_not_draft")
        assert [i["id"] for i in invoices(api, status="void")] == [voided["id"]]
        assert len(invoices(api, customer="a")) == 2
        assert invoices(api, customer="nobody") == []
        sept = invoices(api, **{"from": "2026-09-01T00:00:00Z"})
        assert {i["period"]["start"] for i in sept} == {"2026-09-01T00:00:00Z"}
        # Paging walks every invoice once, newest first.
        seen, after = [], None
        while True:
            params: dict[str, Any] = {"limit": 4, **({"after": after} if after else {})}
            page = api.get("/v1/invoices", params=params).json()
            seen += [i["id"] for i in page["data"]]
            after = page["next_cursor"]
            if after is None:
                break
        assert seen == sorted(seen, reverse=True)
        assert len(set(seen)) == 6


def test_manual_finalize_honours_idempotency_and_takes_the_next_number(api: Api) -> None:
    catalog(api)
    assert api.patch("/v1/workspace", json={"invoice_grace_days": 5}).status_code == 200
    with frozen("2026-08-01T00:00:00") as clock:
        for name in ("a", "b"):
            subscribe(api, name, "pro", "2026-08-01T00:00:00Z")
        clock.set(at("2026-09-01T00:00:00"))
        run_jobs(api)
        first, second = invoices(api)
        assert {first["status"], second["status"]} == {"draft"}
        r = api.post(f"/v1/invoices/{second['id']}/void")  # a voided draft takes no number
        assert r.json()["number"] is None
        headers = {"Idempotency-Key": "fin-1"}
        one = api.post(f"/v1/invoices/{first['id']}/finalize", headers=headers)
        two = api.post(f"/v1/invoices/{first['id']}/finalize", headers=headers)
        assert one.status_code == two.status_code == 200, one.text
        assert one.json() == two.json()
        assert one.json()["number"] == "INV-000001"
        clock.set(at("2026-09-06T00:00:00"))
        run_jobs(api)  # the finalize jobs find nothing left to do
        assert sorted((i["status"], i["number"]) for i in invoices(api)) == [
            ("finalized", "INV-000001"),
            ("void", None),
        ]


def test_cycle_grants_each_periods_credits_at_its_start(api: Api) -> None:
    meter(api, "report")
    plan = {
        "key": "credited",
        "name": "Credited",
        "currency": "USD",
        "credits": {"amount": "100", "expires_at_period_end": True},
        "features": {"report": {"credit_cost": {"per_unit": "1"}}},
    }
    assert api.post("/v1/plans", json=plan).status_code == 201
    with frozen("2026-08-01T00:00:00") as clock:
        subscribe(api, "acme", "credited", "2026-08-01T00:00:00Z")
        run_jobs(api)
        clock.set(at("2026-09-01T00:00:00"))
        run_jobs(api)
        # Read without touching the ledger: the grants are already there.
        state = runtime_of(api.client.app)
        from meterline.credits.models import CreditGrant

        with state.db.read() as session:
            grants = session.query(CreditGrant.allocation, CreditGrant.status).all()
        assert sorted(grants) == [
            ("credited@2026-08-01T00:00:00+00:00", "expired"),
            ("credited@2026-09-01T00:00:00+00:00", "live"),
        ]


def test_usage_needs_a_plan(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "loose"})
    assert_problem(api.get("/v1/customers/loose/usage"), 404, "no_plan")
    assert_problem(api.get("/v1/customers/loose/invoices/upcoming"), 404, "no_plan")
    assert_problem(api.get("/v1/customers/ghost/usage"), 404, "not_found")
    assert_problem(api.get("/v1/invoices/inv_nope"), 404, "not_found")
