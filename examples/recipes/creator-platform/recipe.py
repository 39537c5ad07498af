"""Meters, plan limits and the dashboard (a SaaS platform for creators), on Meterline
(docs/recipes/creator-platform.md).

Apply catalog.yaml, then ``python recipe.py`` with ``METERLINE_URL``, ``METERLINE_API_KEY``
(an admin key) and ``ALERTS_URL`` (where the 80 % alert webhook goes). Prints its numbers
as JSON on the last line.
"""

from __future__ import annotations

import json
import os
from typing import Any

import meterline

client = meterline.Client(
    api_key=os.environ["METERLINE_API_KEY"],
    base_url=os.environ.get("METERLINE_URL", "http://127.0.0.1:8000"),
)


def calls(customer: str, count: int, prefix: str) -> None:
    """The platform's API gateway reports its calls in batches of 5,000."""
    for start in range(0, count, 5000):
        batch = [
            {"id": f"{prefix}-{i}", "type": "api_call", "customer": customer}
            for i in range(start, min(count, start + 5000))
        ]
        client.post("/v1/events", {"events": batch})


def main() -> dict[str, Any]:
    hook = client.post(
        "/v1/webhook-endpoints",
        {"url": os.environ["ALERTS_URL"], "events": ["usage.threshold_reached"]},
    )
    for creator, plan in (("studio_free", "free"), ("studio_pro", "pro")):
        client.create_customer(external_id=creator, name=creator.replace("_", " ").title())
        client.subscribe(customer=creator, plan=plan)

    # Free: 1,000 calls, each allowed through a consume; the 1,001st is refused.
    calls("studio_free", 999, "free")
    last = client.consume("studio_free", "api_call")
    try:
        client.consume("studio_free", "api_call")
        refused = "allowed"
    except meterline.LimitExceeded as exc:
        refused = exc.result.reason

    # Pro: 12,000 calls, a soft limit (never refused), an alert at 8,000.
    calls("studio_pro", 12000, "pro")
    over = client.check("studio_pro", "api_call")  # soft: still allowed past the limit
    client.track("storage", customer="studio_pro", properties={"bytes": 3_500_000_000})
    client.track("message", customer="studio_pro", properties={"count": 42})
    for user in ("ada", "bo", "ada"):
        client.track("session", customer="studio_pro", properties={"user": user})
    client.track("editor_session", customer="studio_pro", properties={"seconds": 5400})
    client.flush()
    usage = client.usage("studio_pro")
    return {
        "free_last_remaining": last.limits[0]["remaining"],
        "free_1001st": refused,
        "pro_soft_allowed": over.allowed,
        "pro": {f["feature"]: [f["used"], f["billable"], f["amount"]] for f in usage["features"]},
        "pro_base_fee": usage["base_fee"],  # prorated: the subscription started today
        "pro_total": usage["total"],
        "webhook_endpoint": hook["id"],
    }


if __name__ == "__main__":
    print(json.dumps(main()))
    client.close()
