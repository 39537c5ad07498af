"""Recipe 2, usage billing with free tiers and Stripe (docs/recipes/usage-billing-stripe.md),
against a real server and the fake Stripe: 75 scans with 50 free at 0.05 leave 25 billable,
1.25; last month's invoice reaches Stripe with one item per line, through a failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billing_sync.fake_stripe import FakeStripe
from recipes_support import Recipe, run_block

pytestmark = pytest.mark.e2e
RECIPE = "usage-billing-stripe"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeStripe]:
    found = FakeStripe()
    yield found
    found.close()


@pytest.fixture(scope="module")
def server_env(fake: FakeStripe) -> dict[str, str]:
    return {
        "METERLINE_STRIPE_API_BASE": fake.api_base,
        "METERLINE_STRIPE_METER_EVENTS_BASE": fake.meter_events_base,
        "METERLINE_STRIPE_REQUESTS_PER_SECOND": "1000",
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


def test_the_page_runs_what_this_test_runs() -> None:
    commands = run_block("recipe-usage-billing-stripe")
    assert "meterline apply examples/recipes/usage-billing-stripe/catalog.yaml" in commands
    assert "python examples/recipes/usage-billing-stripe/recipe.py" in commands
