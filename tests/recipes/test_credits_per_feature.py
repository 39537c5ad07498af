"""Recipe 1, credits per feature (docs/recipes/credits-per-feature.md), against a real
server: 12 credits buy two 5-credit papers, the third is refused with
`insufficient_credits` and the balance is 2; a school's pupil's paper costs 0; a new
feature arrives by a plan edit; library mode prices one with a Python strategy."""

from __future__ import annotations

import pytest

from recipes_support import Recipe, run_block

pytestmark = pytest.mark.e2e
RECIPE = "credits-per-feature"


def test_twelve_credits_buy_two_papers_and_a_pupil_pays_nothing(recipe_server: Recipe) -> None:
    recipe_server.apply()
    numbers = recipe_server.run()

    assert numbers["ana"] == [True, True, False]
    assert numbers["refused_because"] == "insufficient_credits"
    assert numbers["balance"] == "2"
    assert numbers["ledger"] == [  # newest first: a transaction per charged paper
        ["debit", "-5", "question_paper"],
        ["debit", "-5", "question_paper"],
        ["grant", "12", None],
    ]
    assert (numbers["ben_allowed"], numbers["ben_cost"]) == (True, "0")
    assert numbers["school_balance"] == "0"  # nothing charged, nothing needed
    with recipe_server.http() as http:
        papers = http.get("/v1/meters/question_paper/usage", params={"customer": "lincoln_high"})
        anas = http.get("/v1/meters/question_paper/usage", params={"customer": "ana"})
        ledger = http.get("/v1/customers/lincoln_high/credits/transactions").json()["data"]
    assert [r["value"] for r in papers.json()["data"]] == ["1"]  # recorded all the same
    assert [r["value"] for r in anas.json()["data"]] == ["2"]  # the refusal recorded nothing
    assert ledger == []

    # A new feature: the edited catalog, and the same code.
    recipe_server.apply("catalog-flashcards.yaml")
    with recipe_server.http() as http:
        plan = http.get("/v1/plans/individual").json()
    assert plan["version"] == 2
    assert recipe_server.run("flashcard_deck") == {
        "allowed": True,
        "cost": "2",
        "balance": "10",  # 2 left + a 10-credit pack, less 2
        "ben_cost": "0",
    }

    # Library mode, on the server's own database, with a Python cost strategy.
    assert recipe_server.run(script="library.py") == {
        "essay_cost": "5",  # 1,100 words: 5 started blocks of 250
        "balance": "15",
        "pupil": [True, "0"],  # the strategy is told the plan: a school's pupil is free
        "long_essay": [False, "insufficient_credits"],  # 16 credits for 4,000 words
    }
    with recipe_server.http() as http:  # the server sees what library mode recorded
        chloe = http.get("/v1/customers/chloe/credits").json()
    assert chloe["balance"] == "15"


def test_the_page_runs_what_this_test_runs() -> None:
    commands = run_block("recipe-credits-per-feature")
    assert "meterline apply catalog.yaml && python recipe.py" in commands
    assert "meterline apply catalog-flashcards.yaml && python recipe.py flashcard_deck" in commands
