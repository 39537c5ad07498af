"""The Stripe page's setup (docs/stripe.md), run as written (with this fake Stripe's key,
customer and address) against a real `meterline serve`: the usage reaches Stripe."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fake_stripe import FakeStripe

from cli_support import serving

pytestmark = pytest.mark.e2e
STRIPE_PAGE = Path(__file__).parents[2] / "docs" / "stripe.md"


def readme_block(marker: str) -> str:
    text = STRIPE_PAGE.read_text()
    found = re.search(rf"<!-- {marker} -->\n```bash\n(.*?)```", text, re.S)
    assert found, marker
    return found.group(1)


def _json_objects(text: str) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    found, position = [], 0
    while position < len(text.rstrip()):
        obj, position = decoder.raw_decode(text, position)
        found.append(obj)
        while position < len(text) and text[position].isspace():
            position += 1
    return found


def test_the_readme_stripe_setup_works_as_written(fake: FakeStripe, database_url: str) -> None:
    block = readme_block("stripe-setup")
    assert len(block.strip().splitlines()) <= 10
    key = "ml_" + secrets.token_urlsafe(32)
    env = {
        "METERLINE_BOOTSTRAP_KEY": key,
        "METERLINE_STRIPE_API_BASE": fake.api_base,
        "METERLINE_STRIPE_METER_EVENTS_BASE": fake.meter_events_base,
        "METERLINE_JOBS_POLL_SECONDS": "0.2",
    }
    fake.meter("tokens")
    stripe_customer = fake.customer("Acme")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    with serving("--database-url", database_url, env=env) as server:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx2.Client(base_url=server.base, headers=headers, timeout=30) as http:
            # What "A first session" made: a sum meter and the customer, with usage.
            meter = {
                "key": "tokens",
                "event_type": "llm_call",
                "aggregation": "sum",
                "value_property": "tokens",
            }
            assert http.post("/v1/meters", json=meter).status_code == 201
            assert http.post("/v1/customers", json={"external_id": "org_123"}).status_code == 201
            events = [
                {
                    "id": f"e{i}",
                    "type": "llm_call",
                    "customer": "org_123",
                    "timestamp": (hour + timedelta(minutes=7 * i)).isoformat(),
                    "properties": {"tokens": 120.5},
                }
                for i in range(10)
            ]
            assert http.post("/v1/events", json={"events": events}).json()["accepted"] == 10
            script = (
                block.replace("localhost:8000", server.base)
                .replace("cus_NffrFeUfNV2Hib", stripe_customer)
                .replace("sk_test_…", fake.secret_key)
                .replace("whsec_…", "whsec_readme0123456789")
            )
            done = subprocess.run(
                ["bash", "-c", script],
                env={"KEY": key, "PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            answers = _json_objects(done.stdout)  # curl -s prints them back to back
            assert answers[0]["stripe_event_name"] == "tokens"
            assert answers[1]["stripe_customer_id"] == stripe_customer
            assert answers[3] == {"queued": True, "mode": "meter_events"}
            status = answers[-1]
            assert (status["status"], status["mode"]) == ("connected", "meter_events")
            deadline = time.monotonic() + 30
            while fake.total(stripe_customer, "tokens") < 1205:
                assert time.monotonic() < deadline, http.get("/v1/integrations/stripe").text
                time.sleep(0.1)
            usage = http.get(
                "/v1/meters/tokens/usage", params={"customer": "org_123", "from": hour.isoformat()}
            ).json()["data"]
            assert sum(Decimal(row["value"]) for row in usage) == Decimal(1205)
    assert fake.total(stripe_customer, "tokens") == 1205
