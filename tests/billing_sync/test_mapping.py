"""The mapping fields: a customer's ``stripe_customer_id`` (create, PATCH, list filter),
a meter's ``stripe_event_name`` (only meters whose hours add up), and an invoice's
Stripe fields; the lower layers never import the Stripe sync."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support import Api, assert_problem

SRC = Path(__file__).parents[2] / "src" / "meterline"


def test_customers_carry_their_stripe_customer(api: Api) -> None:
    r = api.post("/v1/customers", json={"external_id": "acme", "stripe_customer_id": "cus_A1"})
    assert r.status_code == 201, r.text
    assert r.json()["stripe_customer_id"] == "cus_A1"
    assert (
        api.post("/v1/customers", json={"external_id": "solo"}).json()["stripe_customer_id"] is None
    )
    r = api.patch("/v1/customers/solo", json={"stripe_customer_id": "cus_B2"})
    assert r.json()["stripe_customer_id"] == "cus_B2"
    found = api.get("/v1/customers", params={"stripe_customer_id": "cus_B2"}).json()["data"]
    assert [c["external_id"] for c in found] == ["solo"]
    assert (
        api.patch("/v1/customers/solo", json={"name": "Solo"}).json()["stripe_customer_id"]
        == "cus_B2"
    )
    assert (
        api.patch("/v1/customers/solo", json={"stripe_customer_id": None}).json()[
            "stripe_customer_id"
        ]
        is None
    )
    bad = api.post("/v1/customers", json={"external_id": "x", "stripe_customer_id": "acct_1"})
    body = assert_problem(bad, 422, "validation_error")
    assert body["errors"][0]["field"] == "stripe_customer_id"


@pytest.mark.parametrize("aggregation", ["max", "min", "avg", "latest"])
def test_only_meters_that_add_up_map_to_stripe(api: Api, aggregation: str) -> None:
    meter = {
        "key": "m",
        "event_type": "m",
        "aggregation": aggregation,
        "value_property": "v",
        "stripe_event_name": "m",
    }
    body = assert_problem(api.post("/v1/meters", json=meter), 422, "validation_error")
    assert body["errors"][0]["code"] == "meter_not_additive"
    del meter["stripe_event_name"]
    assert api.post("/v1/meters", json=meter).status_code == 201
    patched = api.patch("/v1/meters/m", json={"stripe_event_name": "m"})
    assert assert_problem(patched, 422, "validation_error")["errors"][0]["code"] == (
        "meter_not_additive"
    )


def test_meters_carry_their_stripe_event_name(api: Api) -> None:
    meter = {
        "key": "scan",
        "event_type": "scan",
        "aggregation": "count",
        "stripe_event_name": "scans",
    }
    assert api.post("/v1/meters", json=meter).json()["stripe_event_name"] == "scans"
    assert (
        api.patch("/v1/meters/scan", json={"stripe_event_name": "ocr"}).json()["stripe_event_name"]
        == "ocr"
    )
    assert api.get("/v1/meters/scan").json()["stripe_event_name"] == "ocr"
    assert (
        api.patch("/v1/meters/scan", json={"stripe_event_name": None}).json()["stripe_event_name"]
        is None
    )
    # A sum meter maps; changing it to a max while mapped is refused.
    assert (
        api.post(
            "/v1/meters",
            json={"key": "t", "event_type": "t", "aggregation": "sum", "stripe_event_name": "t"},
        ).status_code
        == 201
    )
    body = assert_problem(
        api.patch("/v1/meters/t", json={"aggregation": "max"}), 422, "validation_error"
    )
    assert body["errors"][0]["field"] == "stripe_event_name"


LOWER = [
    "customers",
    "meters",
    "invoicing",
    "ingestion",
    "plans",
    "pricing",
    "subscriptions",
    "credits",
    "entitlements",
    "webhooks",
    "alerts",
    "workspaces",
    "auth",
    "kit",
]


def test_lower_layers_never_import_the_stripe_sync() -> None:
    offenders = []
    for package in LOWER:
        for path in (SRC / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                offenders += [
                    f"{path.name}: {n}" for n in names if "billing_sync" in n or n == "stripe"
                ]
    assert offenders == []
    assert list((SRC / "billing_sync").glob("*.py"))  # the walk looks where the code is
    # Only stripe_client.py imports the stripe package.
    importers = [
        p.name
        for p in SRC.rglob("*.py")
        if any(
            (isinstance(n, ast.Import) and any(a.name == "stripe" for a in n.names))
            or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "stripe")
            for n in ast.walk(ast.parse(p.read_text()))
        )
    ]
    assert importers == ["stripe_client.py"]
