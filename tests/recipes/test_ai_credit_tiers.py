"""Recipe 4, credit tiers for AI features (docs/recipes/ai-credit-tiers.md), against a
real server: a Growth organization that ran 100 insights and 10 analyses has 850 left."""

from __future__ import annotations

import pytest

from recipes_support import Recipe, run_block

pytestmark = pytest.mark.e2e
RECIPE = "ai-credit-tiers"


def test_a_growth_customer_after_100_insights_and_10_analyses_has_850_left(
    recipe_server: Recipe,
) -> None:
    recipe_server.apply()
    with recipe_server.http() as http:
        tiers = {p["key"]: p["credits"]["amount"] for p in http.get("/v1/plans").json()["data"]}
    assert tiers == {"explorer": "400", "growth": "2000", "pro": "7000", "enterprise": "20000"}

    numbers = recipe_server.run()

    assert numbers["allocation"] == "2000"
    assert numbers["ran"] == 110
    assert numbers["balance_after_usage"] == "850"
    assert numbers["user_sees"] == "850"  # a member reads its organization's balance
    assert numbers["debits"] == 110
    assert (numbers["insight_cost"], numbers["analysis_cost"]) == ("9", "25")
    assert numbers["user_grant"] == "insufficient_scope"  # a user token reads, never grants
    assert numbers["balance_after_pack"] == "1350"  # once, though the request went twice
    assert numbers["balance_after_upgrade"] == "8350"  # Pro's 7,000 for the rest of the period
    assert numbers["report_and_refresh"] == [True, True]
    assert numbers["final_balance"] == "8307"  # a report 40, a refresh 3

    with recipe_server.http() as http:
        org = http.get("/v1/customers/org_northwind/credits").json()
        ledger = http.get(
            "/v1/customers/org_northwind/credits/transactions", params={"limit": 1000}
        ).json()["data"]
        usage = http.get("/v1/meters/insight/usage", params={"customer": "maya"}).json()
    assert org["balance"] == "8307"
    assert [g["source"] for g in org["grants"]].count("purchase") == 1
    assert sum(1 for t in ledger if t["type"] == "grant") == 3  # growth, the pack, pro
    assert [r["value"] for r in usage["data"]] == ["100"]


def test_the_page_runs_what_this_test_runs() -> None:
    commands = run_block("recipe-ai-credit-tiers")
    assert "meterline apply examples/recipes/ai-credit-tiers/catalog.yaml" in commands
    assert "python examples/recipes/ai-credit-tiers/recipe.py" in commands
