"""The fake Stripe takes what the official ``stripe`` package sends and refuses what live
Stripe refuses, so Meterline's tests against it mean something."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe
from fake_stripe import FakeStripe

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    found = FakeStripe()
    yield found
    found.close()


def event(customer: str, value: str, identifier: str, **extra: Any) -> Any:
    return {
        "event_name": "tokens",
        "identifier": identifier,
        "payload": {"stripe_customer_id": customer, "value": value},
        "timestamp": int((NOW - timedelta(hours=2)).timestamp()),
        **extra,
    }


def test_v1_meter_events_are_strict_and_deduplicated(fake: FakeStripe) -> None:
    client = fake.client()
    fake.meter("tokens")
    cus = fake.customer()
    client.v1.billing.meter_events.create(event(cus, "5", "a"))
    with pytest.raises(
        stripe.InvalidRequestError, match="An event already exists with identifier a"
    ):
        client.v1.billing.meter_events.create(event(cus, "5", "a"))
    with pytest.raises(stripe.InvalidRequestError, match="Received unknown parameter: bogus"):
        client.v1.billing.meter_events.create(event(cus, "1", "b", bogus="x"))
    with pytest.raises(stripe.InvalidRequestError, match="whole number"):
        client.v1.billing.meter_events.create(event(cus, "1.5", "c"))
    old = int((NOW - timedelta(days=36)).timestamp())
    with pytest.raises(stripe.InvalidRequestError, match="35 calendar days"):
        client.v1.billing.meter_events.create(event(cus, "1", "d", timestamp=old))
    with pytest.raises(stripe.InvalidRequestError, match="Missing required param: payload"):
        client.v1.billing.meter_events.create({"event_name": "tokens"})  # type: ignore[typeddict-item]
    assert fake.total(cus, "tokens") == 5
    assert (fake.presented["a"], fake.accepted["a"]) == (2, 1)


def test_stream_needs_a_live_session_and_takes_at_most_100(fake: FakeStripe) -> None:
    fake.meter("tokens")
    cus = fake.customer()
    session = fake.client().v2.billing.meter_event_session.create()
    stream = fake.client().v2.billing.meter_event_stream
    stamp = (NOW - timedelta(hours=1)).isoformat()
    events: Any = [
        {
            "event_name": "tokens",
            "identifier": f"s{i}",
            "timestamp": stamp,
            "payload": {"stripe_customer_id": cus, "value": "2"},
        }
        for i in range(100)
    ]
    stream.create({"events": events}, {"api_key": session.authentication_token})
    stream.create({"events": events[:3]}, {"api_key": session.authentication_token})  # repeats
    assert fake.total(cus, "tokens") == 200
    with pytest.raises(stripe.InvalidRequestError, match="1 to 100"):
        stream.create({"events": events + events[:1]}, {"api_key": session.authentication_token})
    with pytest.raises(stripe.AuthenticationError):  # the secret key is not a session token
        stream.create({"events": events[:1]})
    fake.expire_sessions()
    with pytest.raises(stripe.TemporarySessionExpiredError):
        stream.create({"events": events[:1]}, {"api_key": session.authentication_token})


def test_idempotency_keys_replay_and_refuse_other_parameters(fake: FakeStripe) -> None:
    client = fake.client()
    cus = fake.customer()
    first = client.v1.invoices.create(
        {"customer": cus, "currency": "usd"}, {"idempotency_key": "k1"}
    )
    again = client.v1.invoices.create(
        {"customer": cus, "currency": "usd"}, {"idempotency_key": "k1"}
    )
    assert first.id == again.id
    assert len(fake.invoices) == 1
    with pytest.raises(stripe.IdempotencyError):
        client.v1.invoices.create({"customer": cus, "currency": "eur"}, {"idempotency_key": "k1"})


def test_invoices_finalize_to_the_sum_of_their_items_and_void(fake: FakeStripe) -> None:
    client = fake.client()
    cus = fake.customer()
    invoice = client.v1.invoices.create({"customer": cus, "currency": "usd", "auto_advance": False})
    for amount in (3548, 125):
        client.v1.invoice_items.create(
            {"customer": cus, "invoice": str(invoice.id), "amount": amount, "currency": "usd"}
        )
    done = client.v1.invoices.finalize_invoice(str(invoice.id))
    assert (done.status, done.total) == ("open", 3673)
    with pytest.raises(stripe.InvalidRequestError, match="draft"):
        client.v1.invoice_items.create(
            {"customer": cus, "invoice": str(invoice.id), "amount": 1, "currency": "usd"}
        )
    assert client.v1.invoices.void_invoice(str(invoice.id)).status == "void"


def test_faults_and_hourly_summaries(fake: FakeStripe) -> None:
    client = fake.client()
    meter = fake.meter("tokens")
    cus = fake.customer()
    fake.fail("/v1/billing/meter_events", status=429, retry_after=7)
    with pytest.raises(stripe.RateLimitError) as caught:
        client.v1.billing.meter_events.create(event(cus, "4", "x"))
    assert caught.value.headers is not None
    assert caught.value.headers["Retry-After"] == "7"
    fake.fail("/v1/billing/meter_events", kind="drop_after")
    with pytest.raises(stripe.APIConnectionError):
        client.v1.billing.meter_events.create(event(cus, "4", "x"))
    assert fake.total(cus, "tokens") == 4  # taken, though the answer was lost
    start = int((NOW - timedelta(hours=3)).timestamp())
    summaries = client.v1.billing.meters.event_summaries.list(
        meter,
        {
            "customer": cus,
            "start_time": start,
            "end_time": start + 3 * 3600,
            "value_grouping_window": "hour",
        },
    )
    values = {s.start_time: s.aggregated_value for s in summaries.auto_paging_iter()}
    assert values == {start: 0, start + 3600: 4, start + 7200: 0}
