"""Helpers for the Stripe sync tests."""

from __future__ import annotations

from typing import Any

from fake_stripe import FakeStripe

from jobs_support import at, run_jobs
from support import Api


def connect(
    api: Api, fake: FakeStripe, mode: str = "meter_events", **fields: Any
) -> dict[str, Any]:
    body = {"secret_key": fake.secret_key, "mode": mode, **fields}
    r = api.request("PUT", "/v1/integrations/stripe", json=body)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def mapped_meter(
    api: Api, fake: FakeStripe, key: str, aggregation: str = "sum", **fields: Any
) -> None:
    fake.meter(key)
    body = {"key": key, "event_type": key, "aggregation": aggregation, "stripe_event_name": key}
    r = api.post("/v1/meters", json={**body, **fields})
    assert r.status_code == 201, r.text


def mapped_customer(api: Api, fake: FakeStripe, external_id: str, **fields: Any) -> str:
    stripe_id = fake.customer(external_id)
    body = {"external_id": external_id, "stripe_customer_id": stripe_id, **fields}
    r = api.post("/v1/customers", json=body)
    assert r.status_code == 201, r.text
    return stripe_id


def send(api: Api, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 5000):
        r = api.post("/v1/events", json={"events": events[start : start + 5000]})
        assert r.status_code == 200, r.text
        assert r.json()["rejected"] == 0, r.json()["errors"][:3]


def reports(api: Api, **params: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = None
    while True:
        query = {**params, "limit": "1000", **({"after": after} if after else {})}
        r = api.get("/v1/integrations/stripe/reports", params=query)
        assert r.status_code == 200, r.text
        found += r.json()["data"]
        after = r.json()["next_cursor"]
        if after is None:
            return found


def settle(api: Api) -> int:
    """Run jobs until nothing more is due now."""
    return run_jobs(api)


def tokens(customer: str, when: str, quantity: str, n: object) -> dict[str, Any]:
    """A ``tokens`` event of ``quantity`` at ``when`` (UTC unless it says otherwise)."""
    return {
        "id": f"{customer}-{n}",
        "type": "tokens",
        "customer": customer,
        "timestamp": at(when).isoformat(),
        "quantity": quantity,
    }


def acme_on_tokens(api: Api, fake: FakeStripe, **fields: Any) -> str:
    """A ``tokens`` sum meter and the customer ``acme``, both mapped, and Stripe
    connected in meter_events mode; returns acme's Stripe customer."""
    mapped_meter(api, fake, "tokens")
    stripe_id = mapped_customer(api, fake, "acme")
    connect(api, fake, **fields)
    return stripe_id
