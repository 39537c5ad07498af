"""Apply a recipe's catalog (meters, plans, workspace settings) through the HTTP API.

    python examples/recipes/apply_catalog.py examples/recipes/NAME/catalog.yaml

Creates what is missing and updates what differs (a plan through ``PUT``, which bumps its
version); ``METERLINE_URL`` and ``METERLINE_API_KEY`` (an admin key) name the server.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml


def apply(http: httpx.Client, catalog: dict[str, Any]) -> None:
    for meter in catalog.get("meters", []):
        made = http.post("/v1/meters", json=meter)
        if made.status_code == 409:
            fields = {k: v for k, v in meter.items() if k != "key"}
            made = http.patch(f"/v1/meters/{meter['key']}", json=fields)
        made.raise_for_status()
    for plan in catalog.get("plans", []):
        made = http.post("/v1/plans", json=plan)
        if made.status_code == 409:
            fields = {k: v for k, v in plan.items() if k != "key"}
            made = http.put(f"/v1/plans/{plan['key']}", json=fields)
        made.raise_for_status()
    if catalog.get("workspace"):
        http.patch("/v1/workspace", json=catalog["workspace"]).raise_for_status()


def main(path: str) -> None:
    catalog = yaml.safe_load(Path(path).read_text())
    with httpx.Client(
        base_url=os.environ.get("METERLINE_URL", "http://127.0.0.1:8000"),
        headers={"Authorization": f"Bearer {os.environ['METERLINE_API_KEY']}"},
    ) as http:
        apply(http, catalog)
    print(f"applied {path}")


if __name__ == "__main__":
    main(sys.argv[1])
