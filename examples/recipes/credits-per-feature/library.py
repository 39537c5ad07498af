"""Library mode: Meterline in this process, on the server's database, with a Python
credit-cost strategy (docs/recipes/credits-per-feature.md).

``METERLINE_DATABASE_URL`` names the database (default ``sqlite:///meterline.db``, the
file ``meterline serve`` uses). Essay feedback costs 1 credit per started 250 words —
a rule a plan's table cannot say, so it is a function — and nothing on a school's plan.
Prints its numbers as JSON on the last line.
"""

from __future__ import annotations

import json
import os
from decimal import ROUND_CEILING, Decimal

import meterline
from meterline.library import Usage

ml = meterline.Meterline(os.environ.get("METERLINE_DATABASE_URL", "sqlite:///meterline.db"))


@ml.credit_cost("essay_feedback")
def per_250_words(usage: Usage) -> Decimal:
    if usage.plan == "school":
        return Decimal(0)
    words = Decimal(usage.properties.get("words", 0))
    return (words / 250).to_integral_value(rounding=ROUND_CEILING) * usage.units


if __name__ == "__main__":
    ml.create_customer(external_id="chloe", name="Chloe")
    ml.subscribe(customer="chloe", plan="individual")
    ml.grant_credits(customer="chloe", amount="20", source="purchase")
    essay = ml.consume(customer="chloe", feature="essay_feedback", properties={"words": 1100})
    pupil = ml.consume(customer="ben", feature="essay_feedback", properties={"words": 1100})
    too_long = ml.check(customer="chloe", feature="essay_feedback", properties={"words": 4000})
    numbers = {
        "essay_cost": str(essay.credits.required if essay.credits else None),
        "balance": str(ml.credits("chloe").balance),
        "pupil": [pupil.allowed, str(pupil.credits.required if pupil.credits else None)],
        "long_essay": [too_long.allowed, too_long.reason],
    }
    ml.close()
    print(json.dumps(numbers))
