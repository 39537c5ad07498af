"""Usage billing with Stripe pricing it (Stripe Billing meters), on Meterline
(docs/recipes/usage-billing-stripe.md, "Stripe prices: meter_events mode").

Apply meter-events.yaml to a workspace of its own, then ``python meter_events.py`` with
``METERLINE_URL``, ``METERLINE_API_KEY`` (that workspace's admin key),
``STRIPE_SECRET_KEY`` and ``STRIPE_CUSTOMER`` (the organization's ``cus_…``). It connects
Stripe in ``meter_events`` mode and records the old module's usage of two closed hours
(backdated) and one event of this hour; ``meterline stripe sync`` then reports the closed
hours, one meter event per meter and hour. Prints its numbers as JSON on the last line.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import meterline

client = meterline.Client(
    api_key=os.environ["METERLINE_API_KEY"],
    base_url=os.environ.get("METERLINE_URL", "http://127.0.0.1:8000"),
)
ORG = "org_ledgerly"
MEMBER = "ines"
REPORT_DELAY_MINUTES = 60  # an hour goes to Stripe once it ended this long ago


def connect_stripe() -> None:
    """Stripe prices: each closed hour of each mapped meter becomes one Stripe meter event."""
    body = {
        "secret_key": os.environ["STRIPE_SECRET_KEY"],
        "mode": "meter_events",
        "report_delay_minutes": REPORT_DELAY_MINUTES,
    }
    client.request("PUT", "/v1/integrations/stripe", json=body)


def record_closed_hours(first: datetime) -> int:
    """The old module's rows of the hour ``first`` and the next, both ended more than the
    report delay ago, sent as one batch with their own timestamps (ids make a re-run count
    nothing twice). Returns how many events were accepted."""
    rows = [  # (hours after the first, meter, customer, count)
        (0, "ocr_scan", ORG, 30),
        (0, "ocr_scan", MEMBER, 10),  # a member's scans go to the organization's Stripe customer
        (0, "api_call", ORG, 120),
        (1, "ocr_scan", ORG, 35),
        (1, "api_call", ORG, 80),
    ]
    events = [
        {
            "id": f"{kind}-{who}-{hour}-{i}",
            "type": kind,
            "customer": who,
            "timestamp": (first + timedelta(hours=hour, seconds=20 * i)).isoformat(),
        }
        for hour, kind, who, count in rows
        for i in range(count)
    ]
    answer = client.post("/v1/events", {"events": events})
    if answer["rejected"]:
        raise SystemExit(f"events refused: {answer['errors'][:3]}")
    accepted: int = answer["accepted"]
    return accepted


def hourly(meter: str, start: datetime) -> dict[str, int]:
    """Meterline's usage of the organization per hour (members included): what Stripe gets."""
    rows = client.get(
        f"/v1/meters/{meter}/usage",
        customer=ORG,
        window="hour",
        **{"from": start.isoformat()},
    )["data"]
    return {row["window_start"]: int(row["value"]) for row in rows}


def main() -> dict[str, Any]:
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    connect_stripe()
    client.create_customer(
        external_id=ORG, name="Ledgerly", stripe_customer_id=os.environ["STRIPE_CUSTOMER"]
    )
    client.create_customer(external_id=MEMBER, parent=ORG)
    first = this_hour - timedelta(hours=3)  # three and two hours ago: closed hours
    accepted = record_closed_hours(first)
    client.track("ocr_scan", customer=ORG)  # this hour: Stripe gets it once the hour is closed
    client.flush()
    return {
        "accepted": accepted,
        "ocr_scan": hourly("ocr_scan", first),
        "api_call": hourly("api_call", first),
        "stripe": client.get("/v1/integrations/stripe"),
        "rejected": len(client.rejected),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
    client.close()
