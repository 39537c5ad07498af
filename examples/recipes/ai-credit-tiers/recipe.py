"""Credit tiers for AI features, on Meterline (docs/recipes/ai-credit-tiers.md).

Apply the catalog first (catalog.yaml: four tiers and the AI features' credit costs),
then run this against the server: ``python recipe.py`` with ``METERLINE_URL`` and
``METERLINE_API_KEY`` (an admin key). It prints the numbers as JSON on its last line.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any

import meterline

# What the hand-rolled module called its features, and Meterline's meter for each.
INSIGHT, ANALYSIS, REPORT, REFRESH = "insight", "advanced_analysis", "report", "dashboard_refresh"

admin = meterline.Client(
    api_key=os.environ["METERLINE_API_KEY"],
    base_url=os.environ.get("METERLINE_URL", "http://127.0.0.1:8000"),
)


# -- admin: initialize, add, change tier (the allocation is the plan's `credits`) ------------


def initialize(organization: str, tier: str, members: list[str]) -> str:
    """An organization on a tier, with its members: the tier's monthly credits are
    granted at once and again at every period start. Returns the subscription id."""
    admin.create_customer(external_id=organization, name=organization)
    for user in members:
        admin.create_customer(external_id=user, parent=organization)
    subscription: dict[str, Any] = admin.subscribe(customer=organization, plan=tier)
    return str(subscription["id"])


def add_credits(customer: str, amount: str, reason: str, order: str) -> Decimal:
    """A purchased pack; the order id makes a retried request grant once."""
    granted = admin.request(
        "POST",
        f"/v1/customers/{customer}/credits/grants",
        json={"amount": amount, "source": "purchase", "description": reason},
        headers={"Idempotency-Key": order},
    )
    return Decimal(granted["balance"])


def change_tier(subscription: str, tier: str) -> None:
    """Now: the new tier's allocation is granted for the rest of the period."""
    admin.post(f"/v1/subscriptions/{subscription}/change", {"plan": tier, "at": "now"})


# -- the app: run a feature (charged in the same step as the decision) ------------------------


def run_feature(user: str, feature: str) -> bool:
    """Charge the feature's credits to the user's organization, or refuse."""
    try:
        admin.consume(user, feature)
    except meterline.InsufficientCredits:
        return False
    return True


def balance(customer: str) -> Decimal:
    return Decimal(admin.credits(customer)["balance"])


def history(customer: str) -> list[dict[str, Any]]:
    """The ledger, newest first: grants and debits with the balance after each."""
    page = admin.get(f"/v1/customers/{customer}/credits/transactions", limit=1000)
    found: list[dict[str, Any]] = page["data"]
    return found


def main() -> dict[str, Any]:
    subscription = initialize("org_northwind", "growth", members=["maya", "omar"])
    start = balance("org_northwind")
    ran = [run_feature("maya", INSIGHT) for _ in range(100)]
    ran += [run_feature("omar", ANALYSIS) for _ in range(10)]
    after_usage = balance("org_northwind")
    maya = history("maya")  # a member reads the organization's ledger
    debits = [t for t in maya if t["type"] == "debit"]

    # A user's browser gets a short-lived token: it can read, not grant.
    token = admin.post("/v1/customers/maya/tokens", {"ttl_seconds": 600})["token"]
    browser = meterline.Client(api_key=token, base_url=admin.base_url)
    seen_by_user = Decimal(browser.credits("maya")["balance"])
    try:
        browser.grant_credits(customer="maya", amount="1000")
        user_grant = "allowed"
    except meterline.APIError as refused:
        user_grant = refused.error_code
    browser.close()

    after_pack = add_credits("org_northwind", "500", "500-credit pack", order="order-7781")
    add_credits("org_northwind", "500", "500-credit pack", order="order-7781")  # a retry
    change_tier(subscription, "pro")
    after_upgrade = balance("org_northwind")
    report_ran = run_feature("maya", REPORT)
    refresh_ran = run_feature("omar", REFRESH)
    return {
        "allocation": str(start),
        "ran": sum(ran),
        "balance_after_usage": str(after_usage),
        "debits": len(debits),
        "insight_cost": str(-Decimal(debits[-1]["amount"])),
        "analysis_cost": str(-Decimal(debits[0]["amount"])),
        "user_sees": str(seen_by_user),
        "user_grant": user_grant,
        "balance_after_pack": str(after_pack),
        "balance_after_upgrade": str(after_upgrade),
        "report_and_refresh": [report_ran, refresh_ran],
        "final_balance": str(balance("org_northwind")),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
    admin.close()
