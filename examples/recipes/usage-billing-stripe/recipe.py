"""Usage billing with free tiers and Stripe (an accounting SaaS), on Meterline
(docs/recipes/usage-billing-stripe.md).

Apply catalog.yaml, then ``python recipe.py`` with ``METERLINE_URL``, ``METERLINE_API_KEY``
(an admin key), ``STRIPE_SECRET_KEY`` and ``STRIPE_CUSTOMER`` (the organization's
``cus_…``). Last month's usage is imported and closed into an invoice that goes to Stripe
with one invoice item per line; this month's is tracked three ways. Prints its numbers
as JSON on the last line.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import meterline

client = meterline.Client(
    api_key=os.environ["METERLINE_API_KEY"],
    base_url=os.environ.get("METERLINE_URL", "http://127.0.0.1:8000"),
)
ORG = "org_ledgerly"


def connect_stripe() -> None:
    """Meterline prices; Stripe collects: each finalized invoice becomes a Stripe invoice."""
    body = {"secret_key": os.environ["STRIPE_SECRET_KEY"], "mode": "invoices"}
    client.request("PUT", "/v1/integrations/stripe", json=body)


def import_last_month(start: datetime) -> None:
    """The old module's table, sent as one batch (ids make a re-run count nothing twice)."""
    at = start + timedelta(days=3)
    rows = [("ocr_scan", 75), ("bank_sync", 40), ("sms", 130), ("report", 50)]
    events = [
        {
            "id": f"import-{kind}-{i}",
            "type": kind,
            "customer": ORG,
            "subject": "ines",
            "timestamp": (at + timedelta(minutes=i)).isoformat(),
        }
        for kind, count in rows
        for i in range(count)
    ]
    events.append(
        {
            "id": "import-storage",
            "type": "storage_gb",
            "customer": ORG,
            "timestamp": at.isoformat(),
            "properties": {"gb": "12.5"},
        }
    )
    client.post("/v1/events", {"events": events})


# The decorator: the organization and the metadata come from the function's arguments.
@client.track_usage(
    "ocr_scan",
    customer=lambda document, **_: document["organization"],
    properties=lambda document, **_: {"document": document["kind"], "pages": document["pages"]},
)
def scan(document: dict[str, Any]) -> str:
    return f"text of {document['kind']}"  # recorded only when this returns


def track_this_month() -> None:
    client.track("ocr_scan", customer=ORG, subject="ines")  # one event, buffered
    client.post(  # a bulk upload of 60 receipts: one request
        "/v1/events",
        {"events": [{"type": "ocr_scan", "customer": ORG, "id": f"bulk-{i}"} for i in range(60)]},
    )
    for i in range(14):
        scan({"organization": ORG, "kind": "invoice", "pages": 1 + i % 3})
    client.track("api_call", customer=ORG, properties={"endpoint": "/v1/ledger"})
    client.flush()


def stripe_invoice(timeout: float = 60) -> dict[str, Any]:
    """Last month's invoice, once Stripe has it (sent by background work, retried)."""
    deadline = time.monotonic() + timeout
    while True:
        invoices = client.get("/v1/invoices", customer=ORG)["data"]
        if invoices and invoices[0].get("stripe_status") in {"open", "paid"}:
            found: dict[str, Any] = invoices[0]
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"no Stripe invoice yet: {invoices}")
        time.sleep(0.5)


def main() -> dict[str, Any]:
    now = datetime.now(UTC)
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    connect_stripe()
    client.create_customer(
        external_id=ORG, name="Ledgerly", stripe_customer_id=os.environ["STRIPE_CUSTOMER"]
    )
    client.create_customer(external_id="ines", parent=ORG)
    import_last_month(last_month)
    client.subscribe(customer=ORG, plan="business", start_at=last_month.isoformat())
    track_this_month()

    usage = client.get(f"/v1/customers/{ORG}/usage", features="ocr_scan")
    history = client.get(f"/v1/customers/{ORG}/usage/history", limit=12)["data"]
    forecast = client.get(f"/v1/customers/{ORG}/usage/forecast")
    hourly = client.get(
        "/v1/meters/ocr_scan/usage",
        customer=ORG,
        window="hour",
        **{"from": (now - timedelta(hours=2)).isoformat()},
    )["data"]

    client.create_customer(external_id="org_fiducia", name="Fiducia")
    client.subscribe(customer="org_fiducia", plan="org_quota")
    client.post(
        "/v1/events",
        {
            "events": [
                {"type": "ocr_scan", "customer": "org_fiducia", "id": f"fid-{i}"}
                for i in range(120)
            ]
        },
    )
    quota = client.usage("org_fiducia")

    invoice = stripe_invoice()
    return {
        "current": usage["features"],
        "history": [
            {
                "start": p["period"]["start"],
                "total": p["total"],
                "ocr_scan": next(f["amount"] for f in p["features"] if f["feature"] == "ocr_scan"),
            }
            for p in history
        ],
        "forecast_total": forecast["total"],
        "hourly_scans": sum(int(row["value"]) for row in hourly),
        "quota": [quota["currency"], quota["features"][0]["billable"], quota["total"]],
        "invoice": {
            "total": invoice["total"],
            "stripe_invoice_id": invoice["stripe_invoice_id"],
            "lines": {
                line.get("feature") or line["type"]: line["amount"] for line in invoice["lines"]
            },
        },
        "rejected": len(client.rejected),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
    client.close()
