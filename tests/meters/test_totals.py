"""Several meters' totals read at once (the billing path) equal each meter's own total
and the usage query's value over the same window (GET /v1/meters/{key}/usage), for every
aggregation (a unique count across groups too), on and off the 15-minute grid."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from jobs_support import at
from meterline.customers import service as customers
from meterline.db import Database
from meterline.ingestion import store
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


@pytest.mark.parametrize(
    ("start", "end", "inside"),
    [
        ("2026-11-02T12:04:00", "2026-11-02T12:20:00", [2, 3, 4, 5]),  # the rest: 12:00-12:04
        ("2026-11-02T12:02:00", "2026-11-02T12:13:00", [1, 2, 3]),  # rest on both sides
        ("2026-11-02T12:08:00", "2026-11-02T12:20:00", [3, 4, 5]),  # a longer, quieter rest
        ("2026-11-02T12:12:00", "2026-11-02T12:17:00", [4, 5]),  # mostly raw, two buckets
        ("2026-11-02T12:00:00", "2026-11-02T12:11:00", [0, 1, 2, 3]),  # from the bucket start
    ],
)
def test_a_period_inside_a_bucket_reads_its_rest_not_its_events(
    api: Api, db: Database, monkeypatch: pytest.MonkeyPatch, start: str, end: str, inside: list[int]
) -> None:
    """A range that starts or ends inside a 15-minute bucket: an additive meter's total is
    the bucket's rollup less the raw events of the rest (before the start, after the
    end) when the rest holds fewer events, so a period begun at 12:04 does not read the
    bucket's growing traffic."""
    for aggregation in ("count", "sum", "max"):
        body: dict[str, Any] = {"key": aggregation, "event_type": "e", "aggregation": aggregation}
        if aggregation != "count":
            body["value_property"] = "v"
        assert api.post("/v1/meters", json=body).status_code == 201
    minutes = [1, 3, 5, 10, 14, 16]
    events = [
        {
            "id": f"m{i}",
            "type": "e",
            "customer": "acme",
            "timestamp": f"2026-11-02T12:{minute:02d}:00Z",
            "properties": {"v": f"{i + 1}.5"},
        }
        for i, minute in enumerate(minutes)
    ]
    busy = [  # the bucket's traffic after the start: never read for an additive meter
        {"type": "e", "customer": "acme", "timestamp": "2026-11-02T12:09:00Z", "properties": {}}
        for _ in range(40)
    ]
    assert api.post("/v1/events", json={"events": events + busy}).json()["accepted"] == 46
    read: list[str] = []
    counting = store.counting

    def watched(*args: Any, **kwargs: Any) -> Any:
        for event in counting(*args, **kwargs):
            read.append(event.event_id)
            yield event

    monkeypatch.setattr(store, "counting", watched)
    with db.read() as session:
        found = meters.by_keys(session, api.workspace_id, {"count", "sum", "max"})
        specs = {key: rollups.spec_of(meter) for key, meter in found.items()}
        acme = customers.get(session, api.workspace_id, "acme").id
        states = totals(session, api.workspace_id, list(specs.values()), acme, at(start), at(end))
        values = {key: states[spec.id].result(spec) for key, spec in specs.items()}
    busy_inside = 40 if at(start) <= at("2026-11-02T12:09:00") < at(end) else 0
    assert values["count"] == len(inside) + busy_inside
    assert values["sum"] == sum(Decimal(f"{i + 1}.5") for i in inside)
    assert values["max"] == max(Decimal(f"{i + 1}.5") for i in inside)
    busy_reads = sum(1 for event_id in read if not event_id.startswith("m"))
    # The max meter reads its edges' raw events; count and sum only the rest's.
    assert busy_reads == busy_inside


def test_past_retention_a_partial_bucket_counts_only_kept_events(api: Api, db: Database) -> None:
    """Once retention has deleted a bucket's raw events, its rollup less the (deleted)
    rest would count events outside the range: such a bucket reads what is kept."""
    body = {"key": "count", "event_type": "e", "aggregation": "count"}
    assert api.post("/v1/meters", json=body).status_code == 201
    events = [
        {"type": "e", "customer": "acme", "timestamp": f"2026-11-02T12:{minute:02d}:00Z"}
        for minute in (1, 5, 10)
    ]
    assert api.post("/v1/events", json={"events": events}).json()["accepted"] == 3
    start, end = at("2026-11-02T12:04:00"), at("2026-11-02T12:20:00")
    with db.read() as session:
        found = meters.by_keys(session, api.workspace_id, {"count"})["count"]
        spec = rollups.spec_of(found)
        acme = customers.get(session, api.workspace_id, "acme").id
        assert total(session, api.workspace_id, spec, acme, start, end).count == 2
    retention = {"event_lateness_days": 1, "event_retention_days": 1}
    assert api.patch("/v1/workspace", json=retention).status_code == 200
    assert store.purge(db, [(api.workspace_id, 1)], at("2026-11-20T00:00:00")) == 3
    with db.read() as session:
        # The rollup still holds 3; the range holds 2, of which none is kept.
        assert total(session, api.workspace_id, spec, acme, start, end).count == 0
