"""Several meters' totals read at once (the billing path) equal each meter's own total
and the usage query's value over the same window (GET /v1/meters/{key}/usage), for every
aggregation (a unique count across groups too), on and off the 15-minute grid."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from jobs_support import at
from meterline.customers import service as customers
from meterline.db import Database
from meterline.kit.decimals import display_decimal
from meterline.meters import rollups
from meterline.meters import service as meters
from meterline.meters.usage import total, totals, usage
from support import Api

AGGREGATIONS = ["count", "sum", "min", "max", "avg", "latest", "duration", "unique_count"]
GROUPED = "unique_by_g"  # a unique_count grouped by g: the same value in two groups counts once


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-11-01T00:00:00", "2026-11-21T00:00:00"),  # on the grid: one query
        ("2026-11-01T00:07:00", "2026-11-20T13:01:00"),  # off it: meter by meter
    ],
)
def test_totals_match_each_meters_total(api: Api, db: Database, start: str, end: str) -> None:
    for aggregation in AGGREGATIONS:
        body: dict[str, Any] = {"key": aggregation, "event_type": "e", "aggregation": aggregation}
        if aggregation != "count":
            body["value_property"] = "v"
        assert api.post("/v1/meters", json=body).status_code == 201
    grouped = {"key": GROUPED, "event_type": "e", "aggregation": "unique_count"}
    grouped |= {"value_property": "v", "group_by": ["g"]}
    assert api.post("/v1/meters", json=grouped).status_code == 201
    events = [
        {
            "id": f"e{i}",
            "type": "e",
            "customer": "acme",
            "timestamp": f"2026-11-{1 + i % 19:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
            "properties": {"v": str((i * 37) % 101 + 0.25), "g": str(i % 3)},
        }
        for i in range(300)
    ]
    assert api.post("/v1/events", json={"events": events}).json()["accepted"] == 300
    with db.read() as session:
        keys = [*AGGREGATIONS, GROUPED]
        found = meters.by_keys(session, api.workspace_id, set(keys))
        specs = [rollups.spec_of(found[key]) for key in keys]
        acme = customers.get(session, api.workspace_id, "acme")
        customer = acme.id
        together = totals(session, api.workspace_id, specs, customer, at(start), at(end))
        for spec in specs:
            alone = total(session, api.workspace_id, spec, customer, at(start), at(end))
            assert together[spec.id].result(spec) == alone.result(spec), spec.aggregation
            rows = usage(
                session,
                api.workspace_id,
                found[spec.key],
                customer=acme,
                start=at(start),
                end=at(end),
                window=None,
                zone=ZoneInfo("UTC"),
            )
            assert [r.value for r in rows] == [display_decimal(alone.result(spec))], (
                spec.aggregation
            )
            assert alone.count > 0
        unique = together[found[GROUPED].id].result(specs[-1])
        assert 0 < unique < 300  # values repeat, across groups too
