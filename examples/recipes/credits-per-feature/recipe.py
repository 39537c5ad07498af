"""Credits per feature (an education app), on Meterline (docs/recipes/credits-per-feature.md).

Apply catalog.yaml, then ``python recipe.py`` (``METERLINE_URL``, ``METERLINE_API_KEY``: an
admin key). After applying catalog-flashcards.yaml, ``python recipe.py flashcard_deck``
uses the new feature through the same code. Prints its numbers as JSON on the last line.
"""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from typing import Any

import meterline

client = meterline.Client(
    api_key=os.environ["METERLINE_API_KEY"],
    base_url=os.environ.get("METERLINE_URL", "http://127.0.0.1:8000"),
)


def use_feature(user: str, feature: str, **properties: Any) -> dict[str, Any]:
    """The one function the app calls for every paid feature: Meterline decides from the
    user's plan what it costs (nothing for a school's member) and charges it in the same
    step; a refusal charges nothing."""
    try:
        result = client.consume(user, feature, properties=properties or None)
    except meterline.InsufficientCredits as refused:
        return {"allowed": False, "reason": refused.error_code, **refused.result.credits}
    return {"allowed": True, "event": result.event_id, **result.credits}


def setup() -> None:
    """Ana studies alone and bought 12 credits; Ben is a pupil of Lincoln High."""
    client.create_customer(external_id="ana", name="Ana")
    client.subscribe(customer="ana", plan="individual")
    client.request(
        "POST",
        "/v1/customers/ana/credits/grants",
        json={"amount": "12", "source": "purchase", "description": "12-credit pack"},
        headers={"Idempotency-Key": "order-ana-1"},
    )
    client.create_customer(external_id="lincoln_high", name="Lincoln High")
    client.subscribe(customer="lincoln_high", plan="school")
    client.create_customer(external_id="ben", parent="lincoln_high")


def papers() -> dict[str, Any]:
    setup()
    ana = [use_feature("ana", "question_paper", subject="algebra") for _ in range(3)]
    ben = use_feature("ben", "question_paper", subject="biology")
    ledger = client.get("/v1/customers/ana/credits/transactions")["data"]
    return {
        "ana": [paper["allowed"] for paper in ana],
        "refused_because": ana[2].get("reason"),
        "balance": str(Decimal(client.credits("ana")["balance"])),
        "ledger": [(entry["type"], entry["amount"], entry["feature"]) for entry in ledger],
        "ben_allowed": ben["allowed"],
        "ben_cost": ben["required"],
        "school_balance": client.credits("lincoln_high")["balance"],
    }


def new_feature(feature: str) -> dict[str, Any]:
    """After the catalog edit: the same call, a feature this code never named."""
    client.request(
        "POST",
        "/v1/customers/ana/credits/grants",
        json={"amount": "10", "source": "purchase", "description": "10-credit pack"},
        headers={"Idempotency-Key": "order-ana-2"},
    )
    used = use_feature("ana", feature)
    return {
        "allowed": used["allowed"],
        "cost": used["required"],
        "balance": client.credits("ana")["balance"],
        "ben_cost": use_feature("ben", feature)["required"],
    }


if __name__ == "__main__":
    numbers = new_feature(sys.argv[1]) if len(sys.argv) > 1 else papers()
    client.close()
    print(json.dumps(numbers))
