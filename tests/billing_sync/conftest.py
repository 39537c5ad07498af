"""Stripe sync tests run against the fake Stripe (``fake_stripe.py``): a real HTTP
server on 127.0.0.1 whose clock is Meterline's (so tests move both together)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_stripe import FakeStripe

from meterline.config import Settings
from meterline.kit.time import utc_now


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
