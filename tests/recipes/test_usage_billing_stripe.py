"""Recipe 2, usage billing with free tiers and Stripe (docs/recipes/usage-billing-stripe.md),
against a real server and the fake Stripe, on SQLite and PostgreSQL. Invoices mode: 75 scans
with 50 free at 0.05 leave 25 billable, 1.25; last month's invoice reaches Stripe with one
item per line, through a failure. Meter_events mode: `meterline stripe sync` reports each
closed hour of each mapped meter as one meter event, through a failure, and never twice."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest

from billing_sync.fake_stripe import FakeStripe
from cli_support import key_after
from recipes_support import Recipe, run_block
from support import BACKENDS

pytestmark = pytest.mark.e2e
RECIPE = "usage-billing-stripe"
# The page's meter_events block, command by command (run as written, from the repository).
METERED = "ledgerly-metered"
CREATE = f"meterline workspaces create {METERED}"
EXPORT_KEY = "export METERLINE_API_KEY=ml_…"
APPLY = "meterline apply examples/recipes/usage-billing-stripe/meter-events.yaml"
SCRIPT = "python examples/recipes/usage-billing-stripe/meter_events.py"
SYNC = f"meterline stripe sync --workspace {METERED}"
SUMMARY = f"Stripe reports of '{METERED}': "  # what a sync prints, then its counts


@pytest.fixture(scope="module", params=BACKENDS)
def recipe_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture(scope="module")
def fake(recipe_backend: str) -> Iterator[FakeStripe]:
    """A fake Stripe of each backend's server's own."""
    found = FakeStripe()
    yield found
    found.close()


@pytest.fixture(scope="module")
def server_env(fake: FakeStripe) -> dict[str, str]:
    return {
        "METERLINE_STRIPE_API_BASE": fake.api_base,
        "METERLINE_STRIPE_METER_EVENTS_BASE": fake.meter_events_base,
        "METERLINE_STRIPE_REQUESTS_PER_SECOND": "1000",
        "METERLINE_JOBS_POLL_SECONDS": "0.2",  # retries run as soon as they are due
    }


def test_75_scans_with_50_free_bill_25_at_5_cents(recipe_server: Recipe, fake: FakeStripe) -> None:
    recipe_server.apply()
    customer = fake.customer("Ledgerly")
    fake.fail("/v1/invoices", status=500)  # Stripe fails once: the invoice goes all the same

    numbers = recipe_server.run(STRIPE_SECRET_KEY=fake.secret_key, STRIPE_CUSTOMER=customer)

    assert numbers["current"] == [  # this month, filtered to one feature
        {
            "feature": "ocr_scan",
            "unit": "scan",
            "used": "75",
            "included": "50",
            "billable": "25",
            "amount": "1.25",
        }
    ]
    assert numbers["hourly_scans"] == 75  # single, bulk and decorated: all counted
    assert numbers["rejected"] == 0
    last = numbers["history"][0]
    assert last["ocr_scan"] == "1.25"  # last month: 75 imported scans, 25 billable
    # 29.00 base, scans 1.25, bank syncs 10 at 0.03, SMS 30 at 0.10, storage 7.5 GB at 0.02
    assert last["total"] == "33.70"
    assert numbers["quota"] == ["EUR", "20", "1.00"]  # 120 documents, 100 included

    invoice = numbers["invoice"]
    assert invoice["total"] == "33.70"
    assert invoice["lines"]["ocr_scan"] == "1.25"
    stripe_invoice = fake.invoices[invoice["stripe_invoice_id"]]
    assert stripe_invoice["customer"] == customer
    assert stripe_invoice["status"] == "open"
    assert stripe_invoice["total"] == 3370  # cents: one item per line, added up by Stripe
    assert sorted(i["amount"] for i in stripe_invoice["lines"]["data"] if i["amount"]) == [
        15,
        30,
        125,
        300,
        2900,
    ]
    assert sum(1 for path in fake.paths() if path.startswith("/v1/invoices")) >= 3


def _wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_meter_events_each_closed_hour_once_through_a_failure(
    recipe_server: Recipe, fake: FakeStripe
) -> None:
    stripe_env = {k: v for k, v in recipe_server.env.items() if k.startswith("METERLINE_STRIPE_")}
    customer = fake.customer("Ledgerly")
    fake.meter("ocr_scan")
    fake.meter("api_call")
    key = key_after(recipe_server.command(CREATE).stdout, "Admin API key:")
    recipe_server.command(APPLY, METERLINE_API_KEY=key)
    script = recipe_server.command(
        SCRIPT, METERLINE_API_KEY=key, STRIPE_SECRET_KEY=fake.secret_key, STRIPE_CUSTOMER=customer
    )
    numbers = json.loads(script.stdout.splitlines()[-1])
    assert (numbers["accepted"], numbers["rejected"]) == (275, 0)
    scans = {datetime.fromisoformat(h): v for h, v in numbers["ocr_scan"].items()}
    calls = {datetime.fromisoformat(h): v for h, v in numbers["api_call"].items()}
    first = min(scans)
    closed = [first, first + timedelta(hours=1)]  # three and two hours ago
    # Per hour, the organization's and its member's scans together; one scan this hour.
    assert [scans[h] for h in closed] == [40, 35]
    assert sum(scans.values()) == 76
    assert calls == {closed[0]: 120, closed[1]: 80}
    assert numbers["stripe"]["mode"] == "meter_events"
    assert numbers["stripe"]["report_delay_minutes"] == 60

    fake.fail("/v1/billing/meter_events", status=500)  # Stripe fails once
    done = recipe_server.command(SYNC, **stripe_env)
    found = re.fullmatch(rf"{SUMMARY}(\d+) sent, (\d+) pending, 0 failed\.", done.stdout.strip())
    assert found, done.stdout
    assert int(found[1]) + int(found[2]) == 4  # two closed hours of two meters
    assert ("POST", "/v1/billing/meter_events", 500) in fake.state.requests
    with recipe_server.http(key) as http:
        # The server's background work sends what waits again, 2 s later.
        _wait_for(lambda: http.get("/v1/integrations/stripe").json()["pending"] == 0)
        again = recipe_server.command(SYNC, **stripe_env)
        assert again.stdout.strip() == f"{SUMMARY}4 sent, 0 pending, 0 failed."
        reports = http.get("/v1/integrations/stripe/reports").json()["data"]

    events = fake.live_events()
    assert sorted((e.event_name, e.timestamp, e.value) for e in events) == [
        ("api_call", closed[0], 120),
        ("api_call", closed[1], 80),
        ("ocr_scan", closed[0], 40),
        ("ocr_scan", closed[1], 35),
    ]
    assert {e.customer for e in events} == {customer}  # the member's scans too
    assert fake.total(customer, "ocr_scan") == 75  # this hour's scan waits for its hour
    assert len(reports) == 4  # the second sync decided nothing new
    assert {r["identifier"] for r in reports} == {e.identifier for e in events}
    for e in events:  # one per integration, customer, meter, hour and revision
        assert re.fullmatch(rf"ml[a-z0-9]{{8}}_\d+_\d+_{e.timestamp:%Y%m%d%H}_r1", e.identifier)
    assert {r["status"] for r in reports} == {"sent"}
    assert set(fake.accepted.values()) == {1}  # Stripe took each identifier once
    retried = [r for r in reports if len(r["attempts"]) > 1]  # the one that met the 500
    assert [[a["status_code"] for a in r["attempts"]] for r in retried] == [[500, 200]]


def test_the_page_runs_what_this_test_runs() -> None:
    commands = run_block("recipe-usage-billing-stripe")
    assert "meterline apply examples/recipes/usage-billing-stripe/catalog.yaml" in commands
    assert "python examples/recipes/usage-billing-stripe/recipe.py" in commands
    metered = run_block("recipe-usage-billing-stripe-meter-events", page=RECIPE)
    assert metered == [CREATE, EXPORT_KEY, APPLY, SCRIPT, SYNC, SYNC]
