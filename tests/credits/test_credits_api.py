"""Credits over HTTP: grants, debits, 402s, consumption order, voids, idempotency,
credit costs of features in check/consume, events and reservations, organizations."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from limits_support import check, customer_on, meter, plan_with
from support import Api, assert_problem


def grant(api: Api, customer: str, amount: str, **fields: Any) -> dict[str, Any]:
    r = api.post(f"/v1/customers/{customer}/credits/grants", json={"amount": amount, **fields})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def debit(api: Api, customer: str, amount: str, **fields: Any) -> Any:
    return api.post(f"/v1/customers/{customer}/credits/debits", json={"amount": amount, **fields})


def credits(api: Api, customer: str) -> dict[str, Any]:
    r = api.get(f"/v1/customers/{customer}/credits")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ledger(api: Api, customer: str) -> list[dict[str, Any]]:
    """The whole ledger, oldest first (walking every page)."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if after:
            params["after"] = after
        page = api.get(f"/v1/customers/{customer}/credits/transactions", params=params).json()
        found.extend(page["data"])
        after = page["next_cursor"]
        if after is None:
            return list(reversed(found))


def test_ten_credits_debit_nine_twice(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "c"})
    grant(api, "c", "10")
    first = debit(api, "c", "9", description="report")
    assert first.status_code == 201, first.text
    assert (first.json()["amount"], first.json()["balance_after"]) == ("-9", "1")
    second = debit(api, "c", "9")
    body = assert_problem(second, 402, "insufficient_credits")
    assert (body["balance"], body["required"]) == ("1", "9")
    assert credits(api, "c")["balance"] == "1"
    # The refused debit left no trace in the ledger.
    assert [(t["type"], t["amount"], t["balance_after"]) for t in ledger(api, "c")] == [
        ("grant", "10", "10"),
        ("debit", "-9", "1"),
    ]


def test_burn_down_by_priority(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "c"})
    second = grant(api, "c", "100", priority=2, source="purchase")["grant"]["id"]
    first = grant(api, "c", "100", priority=1, source="promotional")["grant"]["id"]
    r = debit(api, "c", "120")
    assert r.status_code == 201, r.text
    assert r.json()["drawn"] == [
        {"grant": first, "amount": "100"},
        {"grant": second, "amount": "20"},
    ]
    live = credits(api, "c")
    assert live["balance"] == "80"
    assert [(g["id"], g["remaining"]) for g in live["grants"]] == [(second, "80")]


def test_equal_priority_sooner_expiry_burns_first(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "c"})
    soon = datetime.now(UTC) + timedelta(days=3)
    later = soon + timedelta(days=30)
    never = grant(api, "c", "50")["grant"]["id"]
    late = grant(api, "c", "50", expires_at=later.isoformat())["grant"]["id"]
    early = grant(api, "c", "50", expires_at=soon.isoformat())["grant"]["id"]
    assert [g["id"] for g in credits(api, "c")["grants"]] == [early, late, never]
    drawn = debit(api, "c", "70").json()["drawn"]
    assert drawn == [{"grant": early, "amount": "50"}, {"grant": late, "amount": "20"}]


def test_oldest_grant_first_when_all_else_is_equal(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "c"})
    old = grant(api, "c", "5")["grant"]["id"]
    new = grant(api, "c", "5")["grant"]["id"]
    assert debit(api, "c", "6").json()["drawn"] == [
        {"grant": old, "amount": "5"},
        {"grant": new, "amount": "1"},
    ]


def test_void_removes_what_is_left_and_keeps_what_was_spent(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "c"})
    made = grant(api, "c", "30")["grant"]["id"]
    grant(api, "c", "5", priority=9)
    debit(api, "c", "10")
    r = api.post(f"/v1/customers/c/credits/grants/{made}/void")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["remaining"]) == ("voided", "0")
    assert credits(api, "c")["balance"] == "5"
    entries = ledger(api, "c")
    assert [(t["type"], t["amount"], t["balance_after"]) for t in entries] == [
        ("grant", "30", "30"),
        ("grant", "5", "35"),
        ("debit", "-10", "25"),
        ("void", "-20", "5"),
    ]
    assert entries[-1]["grant"] == made
    again = api.post(f"/v1/customers/c/credits/grants/{made}/void")
    assert_problem(again, 409, "grant_closed")
    assert_problem(api.post("/v1/customers/c/credits/grants/grt_nope/void"), 404, "not_found")


def test_expiry_at_the_exact_time(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "c"})
    at = datetime.now(UTC) + timedelta(seconds=1)
    grant(api, "c", "10", expires_at=at.isoformat())
    grant(api, "c", "1")
    assert credits(api, "c")["balance"] == "11"
    time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.2)
    # Nothing ran at that moment: the read itself sees (and writes) the expiry.
    assert credits(api, "c")["balance"] == "1"
    last = ledger(api, "c")[-1]
    assert (last["type"], last["amount"], last["balance_after"]) == ("expiry", "-10", "1")
    assert datetime.fromisoformat(last["at"]) == at  # when it expired, not when seen
    assert_problem(debit(api, "c", "2"), 402, "insufficient_credits")


def test_grants_are_idempotent_by_key(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "c"})
    key = {"Idempotency-Key": "purchase-42"}
    path = "/v1/customers/c/credits/grants"
    first = api.post(path, json={"amount": "500"}, headers=key)
    again = api.post(path, json={"amount": "500"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert credits(api, "c")["balance"] == "500"
    assert len(ledger(api, "c")) == 1
    other = api.post(path, json={"amount": "501"}, headers=key)
    assert_problem(other, 422, "validation_error")
    assert other.json()["errors"][0]["code"] == "idempotency_key_reused"
    # Debits too; a refused debit is not remembered (retrying it tries again).
    dkey = {"Idempotency-Key": "order-7"}
    short = api.post("/v1/customers/c/credits/debits", json={"amount": "900"}, headers=dkey)
    assert_problem(short, 402, "insufficient_credits")
    ok = api.post("/v1/customers/c/credits/debits", json={"amount": "900"}, headers=dkey)
    assert_problem(ok, 402, "insufficient_credits")
    dkey = {"Idempotency-Key": "order-8"}
    paid = [
        api.post("/v1/customers/c/credits/debits", json={"amount": "100"}, headers=dkey)
        for _ in range(3)
    ]
    assert {r.json()["id"] for r in paid} == {paid[0].json()["id"]}
    assert credits(api, "c")["balance"] == "400"


def test_bad_input_is_refused_and_changes_nothing(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "org"})
    api.post("/v1/customers", json={"external_id": "member", "parent": "org"})
    grant(api, "org", "10")
    path = "/v1/customers/org/credits/grants"
    for body, code in [
        ({"amount": "0"}, "not_positive"),
        ({"amount": "-5"}, "not_positive"),
        ({"amount": "abc"}, "invalid_decimal"),
        ({"amount": "5", "source": "gift"}, "literal_error"),
        ({"amount": "5", "expires_at": "2020-01-01T00:00:00Z"}, "expires_in_past"),
        ({"amount": "5", "bogus": 1}, "unknown_field"),
    ]:
        r = api.post(path, json=body)
        problem = assert_problem(r, 422, "validation_error")
        assert problem["errors"][0]["code"] == code, (body, problem)
    member = api.post("/v1/customers/member/credits/grants", json={"amount": "5"})
    assert assert_problem(member, 422, "validation_error")["errors"][0]["code"] == (
        "customer_is_member"
    )
    assert_problem(
        api.post("/v1/customers/nobody/credits/grants", json={"amount": "1"}), 404, "not_found"
    )
    assert credits(api, "org")["balance"] == "10"
    assert len(ledger(api, "org")) == 1


def test_members_spend_their_organizations_credits(api: Api) -> None:
    api.post("/v1/customers", json={"external_id": "org"})
    api.post("/v1/customers", json={"external_id": "member", "parent": "org"})
    grant(api, "org", "10")
    r = debit(api, "member", "4", reference="job-1")
    assert r.status_code == 201, r.text
    assert (r.json()["subject"], r.json()["reference"]) == ("member", "job-1")
    seen = credits(api, "member")
    assert (seen["billed_to"], seen["balance"]) == ("org", "6")
    assert ledger(api, "org")[-1]["subject"] == "member"


# -- credit costs of features ------------------------------------------------------------


@pytest.fixture
def priced(api: Api) -> Api:
    """Individuals pay 5 credits a question paper and 9 (simple) or 25 (advanced) an
    insight; an organization's plan includes question papers without credits."""
    meter(api, "question_paper")
    meter(api, "ai_insight")
    meter(api, "llm_tokens", "sum")
    plan_with(
        api,
        {
            "question_paper": {"credit_cost": {"per_unit": "5"}},
            "ai_insight": {
                "credit_cost": {"per_unit": "9", "property": "depth", "values": {"advanced": "25"}}
            },
            "llm_tokens": {"credit_cost": {"per_unit": "0.01"}},
        },
        key="individual",
    )
    plan_with(api, {"question_paper": {}, "ai_insight": {}}, key="team")
    customer_on(api, "solo", "individual")
    customer_on(api, "org", "team")
    api.post("/v1/customers", json={"external_id": "teacher", "parent": "org"})
    grant(api, "solo", "100")
    grant(api, "org", "100")
    return api


def test_credit_cost_per_feature_in_consume(priced: Api) -> None:
    api = priced
    paper = check(api, "solo", "question_paper", consume=True)
    assert (paper["allowed"], paper["credits"]) == (True, {"balance": "95", "required": "5"})
    simple = check(api, "solo", "ai_insight", consume=True, properties={"depth": "simple"})
    assert simple["credits"] == {"balance": "86", "required": "9"}
    deep = check(api, "solo", "ai_insight", consume=True, properties={"depth": "advanced"})
    assert deep["credits"] == {"balance": "61", "required": "25"}
    # The organization's member uses question papers without spending credits.
    member = check(api, "teacher", "question_paper", consume=True)
    assert (member["allowed"], member["credits"]) == (True, {"balance": "100", "required": "0"})
    assert credits(api, "org")["balance"] == "100"
    entries = ledger(api, "solo")[1:]
    assert [(t["feature"], t["amount"], t["reference"]) for t in entries] == [
        ("question_paper", "-5", paper["event_id"]),
        ("ai_insight", "-9", simple["event_id"]),
        ("ai_insight", "-25", deep["event_id"]),
    ]
    assert {t["subject"] for t in entries} == {"solo"}


def test_insufficient_credits_denies_and_records_nothing(priced: Api) -> None:
    api = priced
    debit(api, "solo", "80")  # 20 left
    deep = check(api, "solo", "ai_insight", consume=True, properties={"depth": "advanced"})
    assert (deep["allowed"], deep["reason"], deep["event_id"]) == (
        False,
        "insufficient_credits",
        None,
    )
    assert deep["credits"] == {"balance": "20", "required": "25"}
    # A read-only check says the same without consuming.
    peek = check(api, "solo", "ai_insight", properties={"depth": "advanced"})
    assert (peek["allowed"], peek["reason"]) == (False, "insufficient_credits")
    assert api.get("/v1/events", params={"customer": "solo"}).json()["data"] == []
    assert credits(api, "solo")["balance"] == "20"
    ok = check(api, "solo", "ai_insight", consume=True, properties={"depth": "simple"})
    assert (ok["allowed"], ok["credits"]["balance"]) == (True, "11")


def test_events_are_charged_as_they_land_never_below_zero(priced: Api) -> None:
    api = priced
    debit(api, "solo", "93")  # 7 left
    events = [{"id": f"p{i}", "type": "question_paper", "customer": "solo"} for i in range(3)]
    r = api.post("/v1/events", json={"events": events})
    assert r.json()["accepted"] == 3
    assert credits(api, "solo")["balance"] == "0"
    charged = ledger(api, "solo")[-3:]
    assert [(t["amount"], t["uncovered"], t["reference"]) for t in charged] == [
        ("-5", None, "p0"),
        ("-2", "3", "p1"),
        ("0", "5", "p2"),
    ]
    # Re-sending the same events charges nothing again.
    assert api.post("/v1/events", json={"events": events}).json()["duplicates"] == 3
    assert len(ledger(api, "solo")) == 1 + 1 + 3  # grant, debit, three charges


def test_reservations_hold_and_settle_credits(priced: Api) -> None:
    api = priced
    hold = api.post(
        "/v1/reservations",
        json={"customer": "solo", "feature": "llm_tokens", "quantity": "2700", "ttl_seconds": 60},
    ).json()
    assert (hold["allowed"], hold["credits"]) == (True, {"balance": "100", "required": "27"})
    seen = credits(api, "solo")
    assert (seen["balance"], seen["held"], seen["available"]) == ("100", "27", "73")
    # What is held cannot be spent twice.
    assert_problem(debit(api, "solo", "80"), 402, "insufficient_credits")
    too_much = api.post(
        "/v1/reservations",
        json={"customer": "solo", "feature": "llm_tokens", "quantity": "9000", "ttl_seconds": 60},
    ).json()
    assert (too_much["allowed"], too_much["reason"]) == (False, "insufficient_credits")
    settled = api.post(f"/v1/reservations/{hold['id']}/settle", json={"quantity": "1800"})
    assert settled.status_code == 200, settled.text
    after = credits(api, "solo")
    assert (after["balance"], after["held"]) == ("82", "0")
    last = ledger(api, "solo")[-1]
    assert (last["reference_type"], last["reference"], last["amount"]) == (
        "reservation",
        hold["id"],
        "-18",
    )


def test_low_balance_and_depletion_alerts(priced: Api, db: Any) -> None:
    from meterline.alerts import service as alerts
    from meterline.customers import service as customers

    api = priced
    r = api.patch("/v1/customers/solo/credits", json={"low_balance_threshold": "50"})
    assert (r.status_code, r.json()["low_balance_threshold"]) == (200, "50")
    debit(api, "solo", "40")  # 60: above
    debit(api, "solo", "20")  # 40: low
    debit(api, "solo", "10")  # 30: still low, no second alert
    debit(api, "solo", "30")  # 0: depleted
    api.post("/v1/events", json={"id": "late", "type": "question_paper", "customer": "solo"})
    with db.read() as session:
        solo = customers.get(session, api.workspace_id, "solo")
        raised = [
            (a.type, a.data["balance"])
            for a in alerts.of_customer(session, api.workspace_id, solo.id)
        ]
    assert raised == [("credits.low", "40"), ("credits.depleted", "0")]
    assert ledger(api, "solo")[-1]["uncovered"] == "5"


def test_a_plan_key_of_a_hundred_characters_allocates_its_credits(api: Api) -> None:
    """The allocation key is the plan key and the period start: it must fit its column
    (PostgreSQL refused 120 characters)."""
    key = "p" * 100
    plan = {"key": key, "name": "Long", "currency": "USD", "credits": {"amount": "50"}}
    assert api.post("/v1/plans", json=plan).status_code == 201
    assert api.post("/v1/customers", json={"external_id": "long"}).status_code == 201
    sub = {"customer": "long", "plan": key, "start_at": "2026-01-01T00:00:00.123456Z"}
    assert api.post("/v1/subscriptions", json=sub).status_code == 201
    r = api.get("/v1/customers/long/credits")
    assert r.status_code == 200, r.text
    assert r.json()["balance"] == "50"
