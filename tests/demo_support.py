"""A running demo server, as the clients' tests use it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import httpx2


@dataclass
class Demo:
    base: str
    key: str

    def used(self, meter: str, customer: str) -> Decimal:
        """The meter's total for the customer over the last 30 days."""
        rows = httpx2.get(
            f"{self.base}/v1/meters/{meter}/usage",
            params={"customer": customer},
            headers={"Authorization": f"Bearer {self.key}"},
        ).json()["data"]
        return sum((Decimal(r["value"]) for r in rows), Decimal(0))

    def new_key(self, scope: str) -> str:
        made = httpx2.post(
            f"{self.base}/v1/api-keys",
            json={"name": f"example {scope}", "scopes": [scope]},
            headers={"Authorization": f"Bearer {self.key}"},
        )
        assert made.status_code == 201, made.text
        key: str = made.json()["key"]
        return key
